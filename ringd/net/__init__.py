"""Networking on trio: framed, multiplexed connections over TCP.

Parts:
  channel    an outgoing connection: hello, many requests in flight, responses matched by id,
             one coalescing writer task
  server     the listener: handshake, verb dispatch (cheap verbs inline, waiting verbs in tasks),
             error frames for bad input, bounded buffers, draining on shutdown
  messaging  the pool of channels to peers, reconnects, and the message filter (fault injection)
"""
