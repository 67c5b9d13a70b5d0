"""ringctl's command groups: data (put/get/delete/load/dump), keyspace, admin, hints,
repair, cluster, stress."""
