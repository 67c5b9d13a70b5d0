"""The coordinator side of every request, and the replica side of the data verbs.

Parts:
  hlc           the hybrid logical clock that stamps writes
  sessions      a client's ``session_us``, observed before stamping
  clock_guard   refuses to coordinate writes while this node's clock is off the cluster's
  timeouts      every timeout the services wait with, built once from the configuration
  topology      the ring as this node sees it: members, tokens, liveness, replicas and plans
  coordination  what the paths share: consistency, replica plans, UNAVAILABLE and timeouts
  writes        write coordination (``_Write``, ``start_write``, the row-size check)
  reads         read coordination (``_Read``, digest reads, mismatch resolution)
  scans         range scans (``scan``, ringctl dump)
  proxy         ``StorageProxy``: the three paths behind one front door, one deadline heap
  replica       the local replica: mutate, read_local, scan_local (and their verbs)
  messages      typed peer messages of the data and schema verbs
  schema_sync   keyspace changes spread by push, gossip and pull (and the schema verbs)
  client_verbs  the client data and keyspace verbs
  requests      turning client requests (put/get/delete/scan arguments) into rows and back

Services are constructed by ``ringd.node`` and given their collaborators; none imports it.
"""
