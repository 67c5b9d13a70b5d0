"""ringctl: the command line and client library of ringd.

Parts:
  app        the root typer app, its global conventions and the entry point
  commands/  one module per command group: data, keyspace, admin, cluster
  client     the client library (blocking ``Client`` and trio ``AsyncClient``), usable by apps
  output     the one place that renders: rich tables for people, JSON for scripts; exit codes
  target     which node a command talks to (--host, RINGCTL_HOST, the current local cluster)
  values     what put and load send: strict JSON values, hex keys, values from files
  cluster/   the local cluster manager (ccm-like): layout, ports, process supervision
"""
