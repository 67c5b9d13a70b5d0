"""ringctl: the command line and client library of ringd.

Parts:
  app        the root typer app, its global conventions and the entry point
  commands/  one module per command group: data, keyspace, admin, hints, repair, cluster, stress
  client     the client library (blocking ``Client`` and trio ``AsyncClient``), usable by apps
  output     the one place that renders: rich tables for people, JSON for scripts; exit codes
  target     which node a command talks to (--host, RINGCTL_HOST, the current local cluster)
  credentials  which user and password ringctl logs in with
  values     what put and load send: strict JSON values, hex keys, values from files
  cluster/   the local cluster manager (ccm-like): layout, ports, process supervision
  stress/    ``ringctl stress``: workload, runner, latency statistics, CPU, report
  docgen     man pages and shell completions generated from the command trees
"""
