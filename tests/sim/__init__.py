"""A deterministic in-process ringd cluster: real nodes, simulated network, clock and faults.

What runs: N real ``ringd.node.Node`` objects (coordinator ``StorageProxy``, gossip, topology and
schema, the storage engine on a temporary directory) in one ``trio.run`` on a
``trio.testing.MockClock`` with autojump, so that seconds of timeouts and gossip cost no wall
time. Nothing binds a socket: every node's messaging is an endpoint of ``network.Network``,
which carries CBOR-encoded messages to the receiver's verb handlers (``Node.handlers``)
honouring each verb's mode. The client is a host of the same network; its requests run the
coordinator's ``writes.start_write``/``reads.start_read`` on the node it picks.

Every choice (latencies, drops, operations, keys, faults, tokens, host ids, gossip peers, trio's
own run-queue order) comes from ``random.Random(seed)``; worker threads run inline and ties
between timers are broken by the order they were set (``runner.deterministic_io``), so a seed
replays exactly, in any process and under any ``PYTHONHASHSEED``.

Run and replay::

    python -m tests.sim --seed 7 --steps 3000          # one seed: summary and failures
    python -m tests.sim --seed 7 --steps 3000 --log    # ...and the operation log
    python -m tests.sim --seed 1 --seeds 32 --steps 3200   # the CI set (tests/sim/test_sim.py)
    python -m tests.sim --seed 7 -v                    # with ringd's INFO logs
    python -m tests.sim --seed 1 --seeds 5 --steps 2500 --handoff   # the handoff CI set
    python -m tests.sim --seed 1 --seeds 4 --steps 2500 --repair    # the repair CI set

A step is one client operation (put, delete or get of one of 40 keys at ONE, QUORUM or ALL, to
a random coordinator) or one fault: a partition, a paused node, a crash (a killed process; in
batch and group commit log modes half of them also lose what the commit log had not fsynced,
keeping a random prefix of it), a clean restart, extra latency on a node, a drop rate on every
internode link, a clock skew (within ``max_skew_ms``) or a memtable flush. At most two nodes are
down or paused at once. Then the heal: every fault removed, every node started, gossip converged,
every client operation answered (client timeout 15 s).

Checks (``history.History``, ``runner.Simulation._check`` and ``convergence``), in every run:

1. Quorum intersection, during the run and after the heal: a read answered by r replicas
   (ONE 1, QUORUM 2, ALL 3 of RF 3) returns a newest version (largest timestamp of its cells
   and row tombstone) at least as new as every write of that key acknowledged to the client by
   w replicas with w + r > 3 *before the read was sent*. A newer version is fine: it may be a
   write that timed out. After the heal every key is read at QUORUM and at ALL.
2. Every version a read returns is a write the client issued to that key, with that content
   (a timestamp is used once per key, so it names one write), never one that failed.
3. UNAVAILABLE writes are stored nowhere: the coordinator sent nothing and applied nothing while
   refusing, and no node's engine (over all its incarnations) was ever asked to apply it.
4. LWW merges agree: after the heal, ALL reads of a key through every node return the same row,
   equal to the merge this harness computes itself from every replica's engine, in reverse order.
5. No unexpected exception: no handler raises, no service dies, no ringd logger logs ERROR
   (``Options.expected_errors`` lists the ones a scenario expects).

Every node runs hinted handoff (``node.hints``) and the repair service (``node.repair``), as
``Node.run`` does; background anti-entropy is off (the default). Two scenarios add a
convergence check after the heal (``convergence``, whose docstring defines them exactly):

6. ``--handoff`` (``Options.handoff``, writes mostly at ONE): once no node has hints pending and
   gossip is settled, every acknowledged write is on every natural replica (its version or a
   newer one), except on a replica that never applied it when the write's coordinator went down
   between the write and its write deadline (it may not have kept the hint yet).
7. ``--repair`` (``Options.repair``, hints off): after ``repair -pr`` on every node, with no
   client operations, every vnode range has the same Merkle root on each of its replicas.
8. ``Options.session``: one client session writes its own keys through random coordinators,
   carrying ``session_us``, while clocks are skewed: each acknowledged write is stamped above
   the earlier ones (``Simulation._check_session``).

A restarted node knows every node from its first request (``system/peers.cbor``, see
docs/cluster.md) and serves clients only once gossip settled (``Node.wait_for_gossip``): the
simulated node is reachable by its peers at once and answers client requests with a refused
connection until then. The runner checks that every restarted node's ring holds every node.
``Options(early_clients=True)`` sends client requests to a node as soon as it serves; by
default the client picks only nodes whose ring holds every node.

Simplifications: a paused node's timers still run (a real SIGSTOPped process fires them at
resume); messages it sends or receives meanwhile are held and released in order at resume.
Crashes lose only commit log data (hint files survive a power loss whole); fsyncs are instant (durability is modelled by the commit
log's synced positions). The admin verbs, range scans and the TCP server are not exercised.
"""
