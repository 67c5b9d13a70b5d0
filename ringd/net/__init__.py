"""Networking on trio: framed, multiplexed connections over TCP.

Parts:
  channel    an outgoing connection: hello, many requests in flight, responses matched by id and
             delivered to callbacks (or awaited), requests of one pass batched
  flusher    writes what a pass queued on each connection at the pass's end, in one write (a
             writer task per connection sends the rest, and a TLS connection's output)
  deadlines  one heap and one task for many timeouts (per channel, and the coordinator's)
  server     the listener: handshake, verb dispatch (inline, deferred with a reply callable, or
             in a task, as the verb table says), error frames for bad input, bounded buffers,
             draining on shutdown
  messaging  the pool of channels to peers, reconnects, and the message filter (fault injection)
  accept     the accept loop, which survives running out of file descriptors or memory
  address    ``HOST:PORT`` parsing
"""
