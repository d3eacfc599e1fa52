"""The demo page at `/`: pick a source, play it with hls.js, watch its segments get made.

It holds no key. It asks for an API key (or takes one from the URL fragment, `/#key=...`,
which never reaches a server or a log; `livetx serve --announce` says so), keeps it in the tab's
sessionStorage, and calls the same API a backend would: /api/v1/sources, /api/v1/sign and
/api/v1/titles, the last every 2.5 s to colour the timeline, only while the tab is visible and
its video plays, with If-None-Match: an unchanged title costs a 304 and no redrawing.

The page is web/pages/demo.html; its placeholders are filled as the player's are (web/player.py).
"""

from __future__ import annotations

import html

from aiohttp import web

from livetx.web.keys import SETTINGS
from livetx.web.player import hls_js_tag, page_response


async def demo(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if not settings.player.demo:
        raise web.HTTPNotFound()
    text = html.escape(settings.player.hls_js_url)
    # CSP with a nonce for the inline script, no Referer
    return page_response(settings, "demo.html", hls_js_tag=hls_js_tag(settings), hls_js_text=text)
