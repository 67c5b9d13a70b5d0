"""Authentication building blocks: who may talk to a node, and over what.

- ``peer``: the cluster secret file (``generate_secret_file``, ``load_secret_file``) and the
  peer challenge–response (``Initiator``, ``Acceptor``) carried by the hello and one ``auth``
  message; the module docstring holds the exact message fields.
- ``roles``: client role kinds (``admin``, ``readwrite``, ``readonly``), the class of every verb
  and ``allowed(kind, verb)``; ``RoleStore`` (scrypt password hashes in ``system/roles.cbor``);
  ``LoginLimiter`` (failed logins per remote host).
- ``tls``: ``server_context`` / ``client_context`` from certificate paths, and ``make_local_ca``
  for local clusters.

- ``gate``: the hello and per-request checks the server runs; ``verbs``: the role management
  verbs; ``node_tls``: a node's TLS contexts, what each side requires, and reloading them.

``peer``, ``roles`` and ``tls`` are sans-IO and take plain values; the connection code calls them
and turns their errors into wire errors.
"""
