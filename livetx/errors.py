"""One root exception and small named subclasses.

Code deep down raises these; `livetx.web.middleware` maps them to HTTP statuses in one
place. Messages are safe to show to a client: they never carry key material or tokens.
"""

from __future__ import annotations

from typing import Any, Self


class LivetxError(Exception):
    """Root of every error livetx raises on purpose."""

    status = 500
    code = "internal_error"
    retry_after: int | None = None  # seconds, sent as Retry-After (503s)

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(LivetxError):
    code = "config_error"


class EncryptionNotConfigured(ConfigError):
    """A profile encrypts its segments and no encryption master key is configured: found when
    one of its titles is asked for (a config without keys still serves its clear profiles)."""

    code = "encryption_not_configured"


# --- the request --------------------------------------------------------------------


class BadRequest(LivetxError):
    status = 400
    code = "bad_request"


class ParameterError(BadRequest):
    """A transcoding parameter is out of range: names the parameter and what is allowed."""

    code = "invalid_parameter"

    def __init__(self, name: str, allowed: str, value: object = None) -> None:
        super().__init__(f"parameter {name!r} is invalid: allowed {allowed}", parameter=name, allowed=allowed)
        self.name = name


class LimitExceeded(ParameterError):
    """A job asks for more than `[limits]` allows (pixels, fps, preset, renditions, pre-transcode)."""

    code = "limit_exceeded"


class ParameterUnsupported(ParameterError):
    """A parameter value the cloud API defines and livetx parses, but does not make yet (video/concat's
    vp9, flac, mxf, ...): names the parameter and what livetx makes today."""

    status = 422
    code = "unsupported_parameter"


class BodyTooLarge(ParameterError):
    status = 413
    code = "request_too_large"


class UriTooLong(LivetxError):
    status = 414
    code = "uri_too_long"


class HeadersTooLarge(LivetxError):
    status = 431
    code = "headers_too_large"


class InvalidPath(BadRequest):
    code = "invalid_path"


class NotFound(LivetxError):
    status = 404
    code = "not_found"


class SourceNotFound(NotFound):
    code = "source_not_found"


class SegmentNotFound(NotFound):
    code = "segment_not_found"


class NotDash(NotFound):
    """A DASH manifest asked for a title with an MPEG-TS rendition: DASH serves fMP4 segments only."""

    code = "not_dash"


class KeyNotFound(NotFound):
    """A key URL that names no content key of the title as it is now."""

    code = "key_not_found"


class PictureNotFound(NotFound):
    """A picture URL of a title that has none: no video, a composite title, or a storyboard
    sheet of another grid or source version (reload the storyboard track)."""

    code = "picture_not_found"


class TimeOutOfRange(LivetxError):
    """A snapshot's time `t` at or past the end of the title: 416, as a byte range past the end."""

    status = 416
    code = "time_out_of_range"


class ProfileNotFound(NotFound):
    code = "profile_not_found"


class TemplateNotFound(NotFound):
    """No template of that name (livetx/batch/templates.py)."""

    code = "template_not_found"


class PipelineNotFound(NotFound):
    """No pipeline of that name (livetx/batch/pipelines.py); `default` always exists."""

    code = "pipeline_not_found"


class PipelineProtected(LivetxError):
    """The pipeline `default` cannot be deleted: jobs that name no pipeline run in it."""

    status = 409
    code = "pipeline_protected"


class SourceUnreadable(LivetxError):
    """The source exists but is not media we can read."""

    status = 422
    code = "source_unreadable"


class SourceTypeRefused(SourceUnreadable):
    """The source is of a kind livetx never opens: a playlist or reference list (its key's
    extension says so), or a container format outside the allow-list. Such files make FFmpeg
    read other objects than the one named."""

    code = "source_type_refused"


class SubtitleUnreadable(LivetxError):
    """A subtitle track (a sidecar file, an IMM `SourceSubtitles` URI) gave no usable cue: not
    text in a known format, or no cue with valid times. Names the track; the video does not
    depend on it, so the track is left out and the title still plays."""

    status = 422
    code = "subtitle_unreadable"

    @classmethod
    def of(cls, track: str, reason: str) -> Self:
        """The error for `track`; the plain `(message)` form stays, as the pool rebuilds errors so."""
        return cls(f"subtitle track {track!r} is unreadable: {reason}", track=track)


class SubtitleTooLarge(SubtitleUnreadable):
    """A subtitle sidecar is larger than livetx reads (`subtitles.MAX_SIDECAR_BYTES`)."""

    code = "subtitle_too_large"


class WatermarkUnreadable(LivetxError):
    """A rendition's watermark image (`wm_image`, a key in the source store) cannot be used: not
    PNG, JPEG or WebP, or too large (livetx/media/watermark.py). Names the key and the parameter."""

    status = 422
    code = "watermark_unreadable"

    @classmethod
    def of(cls, key: str, reason: str) -> Self:
        return cls(f"watermark image {key!r} is unusable: {reason}", key=key, parameter="wm_image")


class WatermarkNotFound(WatermarkUnreadable):
    """A rendition's watermark image is not in the source store."""

    code = "watermark_not_found"


class ProbeTimeout(LivetxError):
    """Reading the source's headers took longer than `transcode.probe_timeout`."""

    status = 504
    code = "probe_timeout"


class SourceChanged(LivetxError):
    """The source was replaced after its playlist was planned: nothing was made from it."""

    status = 503
    code = "source_changed"
    retry_after = 1


class ColourUnsupported(SourceUnreadable):
    """A video whose colour cannot be shown right without what livetx does not do (a Dolby
    Vision profile 5 base layer needs its RPU; a constant-luminance or ICtCp matrix)."""

    code = "colour_unsupported"


class SourceTooLarge(SourceUnreadable):
    """The source is media, but beyond what livetx transcodes (frame size, duration)."""

    code = "source_too_large"


# --- signatures ---------------------------------------------------------------------


class TokenError(LivetxError):
    status = 403
    code = "token_invalid"


class TokenMissing(TokenError):
    status = 401
    code = "token_missing"


class TokenMalformed(TokenError):
    code = "token_malformed"


class TokenExpired(TokenError):
    code = "token_expired"


class TokenNotYetValid(TokenError):
    code = "token_not_yet_valid"


class UnknownKey(TokenError):
    code = "token_unknown_key"


class BadSignature(TokenError):
    code = "token_bad_signature"


class ScopeMismatch(TokenError):
    code = "token_scope_mismatch"


class IpMismatch(TokenError):
    code = "token_ip_mismatch"


class ApiKeyMissing(LivetxError):
    status = 401
    code = "api_key_missing"


class ApiKeyInvalid(LivetxError):
    status = 403
    code = "api_key_invalid"


class ApiKeyScope(LivetxError):
    """The API key is valid but its scope (`[api.scopes.<name>]`) does not cover the request."""

    status = 403
    code = "api_key_scope"


class OutputReserved(LivetxError):
    """A job asked to write where livetx keeps its own objects: a profile's area, probe
    records, job records, anything hidden."""

    status = 422
    code = "output_reserved"


class OutputClaimed(LivetxError):
    """A job asked to write objects that another job (or something else) already holds."""

    status = 409
    code = "output_claimed"


class MetricsTokenMissing(LivetxError):
    status = 401
    code = "metrics_token_missing"


class MetricsTokenInvalid(LivetxError):
    status = 403
    code = "metrics_token_invalid"


class RetryLater(LivetxError):
    """Refused for now: the answer carries Retry-After, `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1, **details: Any) -> None:
        super().__init__(message, **details)
        self.retry_after = retry_after


class KeyRateLimited(RetryLater):
    """One token asked for keys faster than `encryption.key_requests` per minute."""

    status = 429
    code = "key_rate_limited"


class StorageUnavailable(RetryLater):
    """Object storage did not answer, or answered with an error: the request may be retried."""

    status = 503
    code = "storage_unavailable"


# --- transcoding --------------------------------------------------------------------


class Overloaded(RetryLater):
    """Too much transcoding queued, or a segment not ready in time: retry after `retry_after` s."""

    status = 503
    code = "overloaded"


class TranscodeFailed(LivetxError):
    status = 502
    code = "transcode_failed"


class TranscodeTimeout(TranscodeFailed):
    status = 504
    code = "transcode_timeout"


# --- webhook notifications ----------------------------------------------------------


class WebhookTargetInvalid(BadRequest):
    """A webhook target URL or secret that livetx will not call or sign with: names the field
    and why (scheme, host, port, length, a non-public address, a short secret)."""

    code = "webhook_target_invalid"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"webhook {field} refused: {reason}", field=field)
        self.field = field
        self.reason = reason


class WebhookSignatureInvalid(LivetxError):
    """A webhook request whose signature header is missing, malformed or does not match
    (what a receiver answers with livetx/notify/signing.verify)."""

    status = 401
    code = "webhook_signature_invalid"


class WebhookSignatureExpired(WebhookSignatureInvalid):
    """A webhook request whose signed timestamp is outside the receiver's tolerance: a replay,
    or clocks too far apart."""

    code = "webhook_signature_expired"


# --- background jobs (livetx/batch/) ----------------------------------------------------


class JobNotFound(NotFound):
    """No background job of that id (GET and DELETE /api/v1/jobs/{id})."""

    code = "job_not_found"


class JobFinished(LivetxError):
    """A job that has already ended (succeeded, failed or cancelled) cannot be cancelled."""

    status = 409
    code = "job_finished"


class IdempotencyConflict(LivetxError):
    """An `Idempotency-Key` used before with a different request body: names the header."""

    status = 409
    code = "idempotency_conflict"

    def __init__(self, message: str) -> None:
        super().__init__(message, parameter="Idempotency-Key")
