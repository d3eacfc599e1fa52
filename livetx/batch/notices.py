"""A job's notification: delivered with livetx/notify/delivery.py, every attempt kept in the
job's record (its delivery log), and taken over after a restart with the same event id.

The body is the record as the job ended (`JobRecord.notice`: with its `EventId`, which the
HMAC covers, unlike the `X-Livetx-Event-Id` header; without the log itself), signed with
`notify.secret`. The delivery runs on its own task: a receiver that is slow or down holds only
its own delivery, never a job or the runner. A delivery taken over (its runner died) goes on
from the record's log: same event, attempts numbered on, the same 24 h window from the first
attempt.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import replace

from livetx.batch.record import DeliveryAttempt, JobRecord
from livetx.batch.store import JobStore
from livetx.errors import WebhookTargetInvalid
from livetx.notify.delivery import Attempt, Deliveries, Delivery, Event, Target
from livetx.settings import NotifySettings

log = logging.getLogger(__name__)


def topic_url(settings: NotifySettings, topic: str | None) -> str | None:
    """Where an OSS /notify topic's notifications go (None: the topic is only recorded)."""
    return settings.topics.get(topic) if topic is not None else None


def check_target(deliveries: Deliveries, settings: NotifySettings, url: str, field: str) -> None:
    """A job's Notify.URL, refused at submission (400 naming `field`) when livetx would not call it."""
    if not settings.secret:
        raise WebhookTargetInvalid(field, "this server has no notify.secret to sign notifications with")
    try:
        deliveries.target(url, settings.secret)
    except WebhookTargetInvalid as exc:
        raise WebhookTargetInvalid(field, exc.message.split(": ", 1)[-1]) from None


class Notices:
    def __init__(self, deliveries: Deliveries, store: JobStore, settings: NotifySettings, owner: str, ttl: float) -> None:
        self.deliveries = deliveries
        self.store = store
        self.settings = settings
        self.owner = owner  # the runner's claim, kept in the record while a delivery waits for its next attempt
        self.ttl = ttl

    def send(self, record: JobRecord) -> asyncio.Task[Delivery] | None:
        """Deliver the ended job's notification in the background (None: its target is refused now)."""
        assert record.event_id is not None and record.notify_url is not None
        try:
            target: Target = self.deliveries.target(record.notify_url, self.settings.secret)
        except WebhookTargetInvalid as exc:
            log.warning("job %s: webhook target refused: %s", record.id, exc.message)
            return None
        event = Event(record.event_id, json.dumps(record.notice(), sort_keys=True).encode())
        first_at = record.deliveries[0].at if record.deliveries else None
        job_id = record.id
        backoff = self.deliveries.backoff

        async def keep(attempt: Attempt) -> None:
            current = await self.store.get(job_id)
            if current is None:
                return
            first = current.deliveries[0].at if current.deliveries else attempt.at
            next_at = None if attempt.delivered else backoff.next_attempt(first, attempt.number, attempt.at + attempt.duration)
            delivered = True if attempt.delivered else (False if next_at is None else None)
            entry = DeliveryAttempt(event.id, attempt.number, attempt.at, attempt.status, attempt.error, next_at)
            kept = current.with_attempt(entry, delivered)
            if delivered is None:  # still ours until the next attempt is due (and a claim's time after it)
                kept = replace(kept, owner=self.owner, lease_until=(next_at or attempt.at) + self.ttl)
            else:
                kept = replace(kept, owner=None, lease_until=None)
            await self.store.put(kept)

        return self.deliveries.submit(target, event, keep, first_at, len(record.deliveries))
