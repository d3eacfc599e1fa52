"""Coordination between processes and origins: each segment is made once, cluster-wide.

  leases.py        the interface: `Coordinator` (an engine of leases), `Lease`, `CoordinationDown`
  flight.py        the loop over it: take the lease or wait for its holder, then look again
  redis_engine.py  leases on Redis/Valkey, shared by every origin (and every process of each)
  lockfiles.py     leases between the processes of one host, on flock(2)'d lock files

With neither Redis nor several processes there is no engine: the in-process singleflight
(cache/singleflight.py) is all there is, unchanged. It stays in front of the engine in every
case, so one process asks for one lease per segment at a time.
"""
