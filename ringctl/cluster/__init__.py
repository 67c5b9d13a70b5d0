"""Local multi-node clusters for development and tests: what ccm is for Cassandra, built in.

Parts, and how they relate:

- ``layout``: where a cluster lives on disk and what it is. The root is
  ``platformdirs.user_data_dir("ringctl")`` or ``$RINGCTL_HOME``; under it ``current`` names the
  current cluster and ``clusters/NAME/`` holds ``cluster.json`` (the ``ClusterSpec``: nodes,
  datacenters, addresses, ports) and one ``nodeN/`` directory per node with its TOML config,
  data directory, pid file and log. Pure functions and dataclasses; no processes, no network.
- ``manager``: the life cycle on top of the layout. Creates clusters, starts nodes as detached
  ``ringd`` processes, supervises them by pid file (a pid that is gone, or that is not this node's
  ringd, is stale and cleaned up), waits with deadlines until every node sees every other node
  up, stops (SIGTERM, then SIGKILL), pauses and resumes (SIGSTOP/SIGCONT), reports status and
  removes. ``current_cluster`` is the cheap look-up ``ringctl.target`` uses.
- ``faults``: fault injection through the nodes' test hooks (the manager always starts nodes with
  ``enable_test_hooks = true``): partitions between nodes, heal, clock offsets, filter counts.

``ringctl.commands.cluster`` is the thin typer layer over these; it renders, they decide.
"""
