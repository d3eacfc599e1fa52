"""Playlists made through the APIs, as one workflow: the steps between a parsed request (a
`jobs.Job`) and playlists in storage, in the order that keeps a refused request from writing
anything.

1. The API key's scope may read the source and its subtitle files, and write every key the
   job claims.
2. The job stays in its own namespace (no profile's area, no hidden key).
3. The title is planned (its subtitle files exist and are readable), and the planned output
   is within `[limits]` and the scope (its audio and subtitle renditions, next to the master).
4. Only then the job is kept (claims, then its record), its playlists (and a segmented job's
   MPD, `Job.mpd_key`) are written, and its first `initd` ms are queued for pre-transcoding.

No HTTP here: the handlers in web/api.py parse, call this, and answer.
"""

from __future__ import annotations

from livetx.cache.service import SegmentService
from livetx.catalog import Catalog
from livetx.dash.manifest import check_dash
from livetx.errors import NotDash, ParameterError
from livetx.jobs import Job, check_namespace, check_planned, renamed, track_claims
from livetx.layout import target_segments_prefix
from livetx.scopes import ApiScope
from livetx.settings import LimitsSettings
from livetx.titles import Title


async def publish_job(
    job: Job, source_field: str, scope: ApiScope, catalog: Catalog, segments: SegmentService, limits: LimitsSettings
) -> Title:
    """The job's title with its playlists written; `source_field` names the request field
    that gave the source (for a scope error)."""
    scope.check_read(job.source_key, source_field)
    for key, field in job.subtitle_fields().items():
        scope.check_read(key, field)
    for key, field in job.claims().items():
        scope.check_write(key, field)
        if key not in (job.master_key, job.mpd_key):  # a target's segments, `<prefix>-<spec id>-<n>.ts`, sit next to it
            scope.check_write(target_segments_prefix(key), field)
    check_namespace(job, catalog.profiles)
    try:
        title = await catalog.plan(job)
    except ParameterError as exc:
        raise renamed(job, exc) from None
    check_planned(job, title, limits)
    if job.mpd_key is not None:  # a segmented job's MPD (Output.Segment dash): the title must be one DASH describes
        try:
            check_dash(title)
        except NotDash as exc:
            raise ParameterError("segment.f" if job.oss else "Output.Segment.Format", exc.message) from None
    for key in track_claims(job, title):  # the audio and subtitle renditions, next to the master (so in its namespace)
        scope.check_write(key, "MasterURI")
        scope.check_write(target_segments_prefix(key), "MasterURI")
    await catalog.register(job, title)
    await catalog.publish(title)
    if catalog.first_sight(title, publish=False):
        segments.pretranscode(title, f"api {scope.name}")
    return title
