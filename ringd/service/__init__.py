"""The coordinator side of every request.

Parts:
  hlc       the hybrid logical clock that stamps writes
  topology  the ring as this node sees it: members, tokens, liveness, replicas of a key
  proxy     the storage proxy: quorum writes and reads (data + digests), range scans, and the
            replica-side handlers for mutations and local reads
  requests  turning client requests (put/get/delete/scan arguments) into rows and back
"""
