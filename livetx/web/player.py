"""A small page that plays a signed master playlist with hls.js (or native HLS where hls.js can't),
and what every HTML page of livetx answers with: a Content-Security-Policy with a fresh nonce
for its inline script, hls.js pinned by Subresource Integrity, no Referer (the page's URL holds
a signed playlist URL) and frame-ancestors.

The pages are package files in web/pages/ (player.html here, demo.html for web/demo.py), with
one substitution scheme: `string.Template` placeholders (`${nonce}`, `${hls_js_tag}`, ...),
filled by `page_response`. A value is inserted once and never scanned again. `?src=` is a playlist of this server, or of an origin in
`player.allowed_sources`: the page checks before it loads, the CSP's connect-src and media-src
make the browser refuse others, and this handler answers an obviously foreign `src` with a 400.
"""

from __future__ import annotations

import html
import json
import re
import secrets
from functools import cache
from importlib import resources
from string import Template
from urllib.parse import urlsplit

from aiohttp import web

from livetx.errors import ConfigError, ParameterError
from livetx.settings import Settings
from livetx.web.keys import SETTINGS

# an origin as CSP and URL.origin spell it: scheme://host[:port], nothing else
_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
# a CSP source list: no ";" or "," (which would start another directive or policy), no quotes but '
_SOURCE_LIST = re.compile(r"[A-Za-z0-9 .:/*'\[\]-]+")
# a script URL as a CSP source expression: no spaces, ";" or ","
_SCRIPT_URL = re.compile(r"[^\s;,'\"<>]+")


@cache
def page_template(name: str) -> Template:
    """web/pages/<name>, read once."""
    return Template(resources.files("livetx.web").joinpath("pages", name).read_text(encoding="utf-8"))


def allowed_sources(settings: Settings) -> tuple[str, ...]:
    """The origins of `player.allowed_sources`; ConfigError for anything that isn't one."""
    origins = tuple(o.strip().rstrip("/") for o in settings.player.allowed_sources.split(",") if o.strip())
    for origin in origins:
        if not _ORIGIN.fullmatch(origin):
            raise ConfigError(f"player.allowed_sources: {origin!r} is not an origin (scheme://host[:port])")
    return origins


def playable_origins(settings: Settings) -> tuple[str, ...]:
    """Origins besides the page's own that playlists may come from: `player.allowed_sources`,
    and `server.base_url`'s (signed URLs point there: a CDN in front of livetx)."""
    base = urlsplit(settings.server.base_url)
    own = (f"{base.scheme}://{base.netloc}",) if base.scheme in ("http", "https") and base.netloc else ()
    return tuple(dict.fromkeys(own + allowed_sources(settings)))


def check_page_settings(settings: Settings) -> None:
    """At startup: the settings that go into the pages' headers are what they claim to be."""
    playable_origins(settings)
    if not _SOURCE_LIST.fullmatch(settings.player.frame_ancestors.strip() or "x"):
        raise ConfigError("player.frame_ancestors must be a CSP source list such as 'self' or https://a.example")
    url = settings.player.hls_js_url
    if not _SCRIPT_URL.fullmatch(url):
        raise ConfigError("player.hls_js_url must be a URL without spaces, quotes, ';' or ','")
    integrity = settings.player.hls_js_integrity
    if integrity and not re.fullmatch(r"sha(256|384|512)-[A-Za-z0-9+/=]+", integrity):
        raise ConfigError("player.hls_js_integrity must look like sha384-<base64>")


def hls_js_tag(settings: Settings) -> str:
    """The <script> tag of hls.js: with integrity and crossorigin when `hls_js_integrity` is set."""
    url, integrity = settings.player.hls_js_url, settings.player.hls_js_integrity
    sri = f' integrity="{html.escape(integrity, quote=True)}" crossorigin="anonymous"' if integrity else ""
    return f'<script src="{html.escape(url, quote=True)}"{sri}></script>'


def content_security_policy(settings: Settings, nonce: str) -> str:
    """Scripts: this server, the one hls.js URL, and inline scripts carrying this response's
    nonce. Fetches and media: this server and `player.allowed_sources` (blob: for MSE)."""
    url = settings.player.hls_js_url
    parts = urlsplit(url)
    hls_js = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme in ("http", "https") else ""
    sources = " ".join(playable_origins(settings))
    directives = [
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}' {hls_js}".strip(),
        "style-src 'self' 'unsafe-inline'",  # the pages' <style> and style attributes
        "img-src 'self' data:",
        f"connect-src 'self' {sources}".strip(),
        f"media-src 'self' blob: {sources}".strip(),
        "worker-src 'self' blob:",  # hls.js runs its demuxer in a worker made from a blob
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors " + (settings.player.frame_ancestors.strip() or "'none'"),
    ]
    return "; ".join(directives)


def page_response(settings: Settings, page: str, **values: str) -> web.Response:
    """The HTML page web/pages/<page> with its placeholders filled from `values`, and `${nonce}`
    with this response's nonce, named in its CSP (a placeholder left unfilled is a KeyError)."""
    nonce = secrets.token_urlsafe(18)
    headers = {
        "Content-Security-Policy": content_security_policy(settings, nonce),
        "Referrer-Policy": "no-referrer",  # the page's URL may hold a signed playlist URL
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",  # a nonce is good for one response
    }
    # track-menus.js: the audio and subtitle menus both pages build for hls.js (inline, under the nonce)
    body = page_template(page).substitute(values, nonce=nonce, track_menus=page_template("track-menus.js").template)
    return web.Response(text=body, content_type="text/html", headers=headers)


def check_src(request: web.Request, settings: Settings) -> None:
    """A `src` that names another origin must be one of `player.allowed_sources`."""
    src = request.query.get("src", "")
    parts = urlsplit(src)
    if not src or (not parts.scheme and not parts.netloc):
        return  # a path on this server
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    if origin != str(request.url.origin()).lower() and origin not in {o.lower() for o in playable_origins(settings)}:
        raise ParameterError("src", "a playlist URL on this server or on an origin listed in player.allowed_sources")


async def player(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    check_src(request, settings)
    config = {"allowed_sources": list(playable_origins(settings)), "hls_js_url": settings.player.hls_js_url}
    # JSON inside <script type="application/json">: "<" escaped so no "</script>" can close it
    config_text = json.dumps(config).replace("<", "\\u003c")
    return page_response(settings, "player.html", hls_js_tag=hls_js_tag(settings), config=config_text)
