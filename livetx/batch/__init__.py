"""Background jobs: work that runs on its own and writes its outputs to storage.

  record.py    the job record (states, progress, outputs, error, delivery log): pure
  request.py   the request contract (JSON and OSS x-oss-async-process): pure
  store.py     records, open markers, cancel markers and Idempotency-Keys in output storage
  claims.py    who runs a job (leases: Redis, else lock files plus the record's claim)
  work.py      a composite's title, its segments at Priority.JOB, the file written in one PUT
  remux.py     the segments' packets joined into a container, in a worker process
  notices.py   a job's webhook, delivered with livetx/notify/, logged in its record
  runner.py    one per server process: finds, claims, runs and notifies jobs

Not to be confused with livetx/jobs.py: the playlists made through the APIs (IMM, OSS hls/m3u8),
whose records are `.jobs/<id>.json`; background jobs' are `.jobs/batch/<id>.json`.
"""
