"""Background job records in output storage, where every origin reads them (keys: livetx/layout.py).

- `.jobs/batch/<id>.json`: the record (livetx/batch/record.py), written whole each time.
- `.jobs/batch/open/<id>`: a marker, from submission until the job ended and its notification
  was delivered or given up: what runners list to find work (one listing, not every record).
- `.jobs/batch/cancel/<id>`: a cancel request for a running job. A record has one writer at a
  time (the runner holding its claim; before that, the submitter); `DELETE` writes this marker
  rather than the record, and the runner ends the job as cancelled at its next segment.
- `.jobs/batch/keys/<sha256>.json`: an `Idempotency-Key` of one API key -> its job and the hash
  of the request's meaning.

Object stores offer no portable compare-and-swap: two submissions racing with one new
Idempotency-Key can both create a job (the second index write wins; both jobs run). A repeat
after the first answer finds the first job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from livetx.batch.record import JobRecord, RecordInvalid, is_job_id
from livetx.errors import IdempotencyConflict, StorageUnavailable
from livetx.layout import BATCH_OPEN_PREFIX, BATCH_PREFIX, batch_cancel_key, batch_idempotency_key, batch_open_key, batch_record_key
from livetx.storage.base import Storage

LISTED = 1000  # records or markers one listing returns, at most


@dataclass(frozen=True)
class Remembered:
    job_id: str
    meaning: str


class JobStore:
    def __init__(self, output: Storage) -> None:
        self.output = output

    async def get(self, job_id: str) -> JobRecord | None:
        """The record, or None (no such job, or a record this version can't read)."""
        if not is_job_id(job_id):
            return None
        key = batch_record_key(job_id)
        try:
            if await self.output.stat(key) is None:
                return None
            return JobRecord.from_stored(json.loads(await self.output.read(key)))
        except (FileNotFoundError, RecordInvalid, ValueError):
            return None

    async def put(self, record: JobRecord) -> None:
        await self.output.write(batch_record_key(record.id), json.dumps(record.to_stored(), sort_keys=True).encode())

    async def create(self, record: JobRecord) -> None:
        """A new job: its record, then its open marker (a runner that lists the marker finds the record)."""
        await self.put(record)
        await self.output.write(batch_open_key(record.id), record.id.encode())

    async def close(self, job_id: str, runner: bool = True) -> None:
        """Nothing left to do for the job (ended, notification delivered or given up). Only a
        runner, which ran the job, removes its cancel marker: a job cancelled while queued may
        have been claimed meanwhile, and its runner must still find the marker."""
        await self.output.delete(batch_open_key(job_id))
        if runner:
            await self.output.delete(batch_cancel_key(job_id))

    async def open_ids(self) -> list[str]:
        listed = await self.output.list_records(BATCH_OPEN_PREFIX, LISTED)
        return [info.key[len(BATCH_OPEN_PREFIX) :] for info in listed if is_job_id(info.key[len(BATCH_OPEN_PREFIX) :])]

    async def all(self, limit: int) -> list[JobRecord]:
        """Up to `limit` records, by id (for `GET /api/v1/jobs`)."""
        listed = await self.output.list_records(BATCH_PREFIX, LISTED)
        out = []
        for info in listed:
            name = info.key[len(BATCH_PREFIX) :].removesuffix(".json")
            record = await self.get(name) if is_job_id(name) else None
            if record is not None:
                out.append(record)
            if len(out) >= limit:
                break
        return out

    async def request_cancel(self, job_id: str) -> None:
        await self.output.write(batch_cancel_key(job_id), b"cancel")

    async def cancel_requested(self, job_id: str) -> bool:
        try:
            return await self.output.stat(batch_cancel_key(job_id)) is not None
        except StorageUnavailable:
            return False  # asked again at the next segment

    # ---- Idempotency-Key ------------------------------------------------------------------

    async def remembered(self, api_key: str, idempotency_key: str, meaning: str) -> str | None:
        """The job an earlier request with this key made, if it asked the same; None if there
        was none; IdempotencyConflict if it asked something else."""
        key = batch_idempotency_key(api_key, idempotency_key)
        if await self.output.stat(key) is None:
            return None
        try:
            found = json.loads(await self.output.read(key))
            before = Remembered(str(found["JobId"]), str(found["Meaning"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None
        if before.meaning != meaning:
            raise IdempotencyConflict("Idempotency-Key was used before with another request body: use a new key for a new job")
        return before.job_id

    async def remember(self, api_key: str, idempotency_key: str, meaning: str, job_id: str) -> None:
        body = json.dumps({"JobId": job_id, "Meaning": meaning}, sort_keys=True).encode()
        await self.output.write(batch_idempotency_key(api_key, idempotency_key), body)
