"""Webhook notifications: signed JSON bodies delivered at least once, with retries.

signing.py (pure): the signature scheme, for senders and receivers. schedule.py (pure): when
the next attempt is due. delivery.py: target URLs checked, one HTTP attempt, and `Deliveries`,
which runs many deliveries at once and reports every attempt to its caller. Nothing here
imports the web app: the job system calls it and keeps the delivery log in storage.
"""
