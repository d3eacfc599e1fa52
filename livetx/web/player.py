"""A small page that plays a signed master playlist with hls.js (or native HLS where hls.js can't)."""

from __future__ import annotations

import html
import json

from aiohttp import web

from livetx.web.keys import SETTINGS

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>livetx player</title>
<style>
  body {{ margin: 0; background: #111; color: #ddd; font: 14px/1.4 system-ui, sans-serif; }}
  main {{ max-width: 1100px; margin: 0 auto; padding: 16px; }}
  video {{ width: 100%; background: #000; aspect-ratio: 16 / 9; }}
  #status {{ margin-top: 8px; color: #9a9; white-space: pre-wrap; }}
  code {{ color: #aac; word-break: break-all; }}
</style>
<script src="{hls_js}"></script>
</head>
<body>
<main>
  <h1>livetx</h1>
  <video id="video" controls playsinline muted></video>
  <div id="status">loading...</div>
  <p>Playlist: <code id="src"></code></p>
</main>
<script>
const src = new URLSearchParams(location.search).get("src") || {default_src};
const video = document.getElementById("video");
const status = document.getElementById("status");
document.getElementById("src").textContent = src ? src.split("?")[0] : "(none: add ?src=<signed master URL>)";
const say = (text) => {{ status.textContent = text; }};
window.livetx = {{ errors: [], events: [] }};
if (!src) {{
  say("no playlist: open this page with ?src=<signed master playlist URL>");
}} else if (window.Hls && Hls.isSupported()) {{
  const hls = new Hls();
  window.livetx.hls = hls;
  hls.on(Hls.Events.MANIFEST_PARSED, (_, data) => say("playing " + data.levels.length + " rendition(s) with hls.js " + Hls.version));
  hls.on(Hls.Events.FRAG_LOADED, (_, data) => window.livetx.events.push({{sn: data.frag.sn, level: data.frag.level}}));
  hls.on(Hls.Events.ERROR, (_, data) => {{
    window.livetx.errors.push({{details: data.details, fatal: data.fatal, at: video.currentTime}});
    if (data.fatal) say("error: " + data.details);
  }});
  hls.loadSource(src);
  hls.attachMedia(video);
  video.play().catch(() => say("press play"));
}} else if (video.canPlayType("application/vnd.apple.mpegurl")) {{
  video.src = src;
  say("playing with native HLS");
}} else {{
  say("this browser cannot play HLS, and hls.js did not load from {hls_js_text}");
}}
</script>
</body>
</html>
"""


async def player(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    url = settings.player.hls_js_url
    body = PAGE.format(hls_js=html.escape(url, quote=True), hls_js_text=html.escape(url), default_src=json.dumps(""))
    return web.Response(text=body, content_type="text/html", headers={"Cache-Control": "no-cache"})
