"""The demo page at `/`: pick a source, play it with hls.js, watch its segments get made.

It holds no key. It asks for an API key (or takes one from the URL fragment, `/#key=...`,
which never reaches a server or a log; `livetx serve --announce` says so), keeps it in the tab's
sessionStorage, and calls the same API a backend would: /api/v1/sources, /api/v1/sign and
/api/v1/titles, the last every 2.5 s to colour the timeline, only while the tab is visible and
its video plays, with If-None-Match: an unchanged title costs a 304 and no redrawing.
"""

from __future__ import annotations

import html

from aiohttp import web

from livetx.web.keys import SETTINGS
from livetx.web.player import hls_js_tag, page_response

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>livetx</title>
<style>
  :root { --bg: #0f1115; --panel: #171a21; --ink: #d8dde6; --dim: #7d8696; --accent: #6cb6ff; }
  body { margin: 0; background: var(--bg); color: var(--ink); font: 14px/1.45 system-ui, sans-serif; }
  header { padding: 14px 20px; border-bottom: 1px solid #232733; display: flex; gap: 16px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; letter-spacing: .02em; }
  header span { color: var(--dim); }
  main { display: grid; grid-template-columns: 260px 1fr; gap: 18px; padding: 18px 20px; }
  aside, section { background: var(--panel); border-radius: 8px; padding: 12px; }
  aside h2, section h2 { font-size: 13px; text-transform: uppercase; color: var(--dim); margin: 0 0 8px; }
  #sources button { display: block; width: 100%; text-align: left; background: none; border: 0; color: var(--ink);
    padding: 6px 8px; border-radius: 5px; cursor: pointer; font: inherit; }
  #sources button:hover, #sources button.on { background: #232a36; color: var(--accent); }
  video { width: 100%; background: #000; border-radius: 6px; aspect-ratio: 16 / 9; }
  #facts { color: var(--dim); margin: 8px 0 14px; min-height: 1.4em; }
  .row { display: grid; grid-template-columns: 150px 1fr; gap: 10px; align-items: center; margin: 4px 0; }
  .row .name { color: var(--dim); white-space: nowrap; }
  .row.current .name { color: var(--accent); font-weight: 600; }
  .cells { display: flex; gap: 2px; height: 16px; position: relative; }
  .cell { background: #2a2f3a; border-radius: 2px; }
  .cell.cached { background: #3fa46a; }
  .cell.transcoding { background: #e0a526; animation: pulse 0.8s infinite alternate; }
  .playhead { position: absolute; top: -3px; bottom: -3px; width: 2px; background: var(--accent); }
  @keyframes pulse { from { opacity: .55; } to { opacity: 1; } }
  .legend span { margin-right: 14px; }
  .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; }
  #key { display: none; gap: 8px; } #key input { flex: 1; background: #0c0e12; color: var(--ink); border: 1px solid #2a2f3a;
    border-radius: 5px; padding: 6px; }
  #key button { background: var(--accent); color: #06121f; border: 0; border-radius: 5px; padding: 6px 10px; }
</style>
__HLS_JS_TAG__
</head>
<body>
<header><h1>livetx</h1><span>on-demand HLS: only what is watched is transcoded</span></header>
<main>
  <aside>
    <h2>Sources</h2>
    <form id="key"><input type="password" placeholder="API key" autocomplete="off"><button>Use</button></form>
    <div id="sources"></div>
  </aside>
  <section>
    <h2>Player</h2>
    <video id="video" controls playsinline muted></video>
    <div id="facts">pick a source</div>
    <h2>Segments</h2>
    <div class="legend"><span><i style="background:#2a2f3a"></i>not transcoded</span>
      <span><i style="background:#e0a526"></i>transcoding</span><span><i style="background:#3fa46a"></i>cached</span></div>
    <div id="timeline"></div>
  </section>
</main>
<script nonce="__NONCE__">
"use strict";
const PROFILE = new URLSearchParams(location.search).get("profile") || "default";
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("key")) {
  sessionStorage.setItem("livetx-api-key", fragment.get("key"));
  history.replaceState(null, "", location.pathname + location.search);
}
const video = document.getElementById("video");
const facts = document.getElementById("facts");
const POLL_MS = 2500;  // the status poll, while the tab is visible and the video plays
const state = { hls: null, key: null, timer: null, title: null, etag: null };
window.livetx = { errors: [], state };

async function api(path, body) {
  const key = sessionStorage.getItem("livetx-api-key") || "";
  const response = await fetch(path, { method: body ? "POST" : "GET", body: body ? JSON.stringify(body) : undefined,
    headers: { "Authorization": "Bearer " + key, "Content-Type": "application/json" } });
  const data = await response.json();
  if (response.status === 401 || response.status === 403) { askForKey(); }
  if (!response.ok) { throw new Error(data.error ? data.error.code + ": " + data.error.message : response.status); }
  return data;
}

function askForKey() {
  const form = document.getElementById("key");
  form.style.display = "flex";
  form.onsubmit = (event) => {
    event.preventDefault();
    sessionStorage.setItem("livetx-api-key", form.elements[0].value);
    form.style.display = "none";
    loadSources();
  };
}

async function loadSources() {
  const list = document.getElementById("sources");
  try {
    const { sources } = await api("/api/v1/sources");
    list.replaceChildren(...sources.map((s) => {
      const button = document.createElement("button");
      button.textContent = s.key;
      button.onclick = () => { for (const b of list.children) b.classList.remove("on"); button.classList.add("on"); play(s.key); };
      return button;
    }));
    if (!sources.length) list.textContent = "no sources in storage";
  } catch (error) { list.textContent = String(error.message); }
}

async function play(key) {
  if (state.hls) state.hls.destroy();
  clearTimeout(state.timer);
  state.key = key;
  state.title = null;
  state.etag = null;
  const signed = await api("/api/v1/sign", { key, profile: PROFILE, scope: "title" });
  const hls = new Hls();
  state.hls = hls;
  hls.on(Hls.Events.ERROR, (_, data) => { window.livetx.errors.push({ details: data.details, fatal: data.fatal, at: video.currentTime });
    if (data.fatal) facts.textContent = "error: " + data.details; });
  hls.loadSource(signed.url);
  hls.attachMedia(video);
  video.play().catch(() => {});
  refresh();
}

// The title's state, or null when it has not changed since the last answer (304).
async function titleState(key) {
  const headers = { "Authorization": "Bearer " + (sessionStorage.getItem("livetx-api-key") || "") };
  if (state.etag) headers["If-None-Match"] = state.etag;
  const path = "/api/v1/titles/" + PROFILE + "/" + key.split("/").map(encodeURIComponent).join("/");
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 304) return null;
  const data = await response.json();
  if (response.status === 401 || response.status === 403) { askForKey(); }
  if (!response.ok) { throw new Error(data.error ? data.error.code + ": " + data.error.message : response.status); }
  if (key === state.key) state.etag = response.headers.get("ETag");
  return data;
}

// One poll, then the next in POLL_MS. The server is asked only while the tab is visible and
// the video plays (or before the first answer); otherwise only the playhead moves.
async function refresh() {
  clearTimeout(state.timer);
  const key = state.key;
  if (!key) return;
  try {
    if (document.visibilityState === "visible" && (!video.paused || !state.title)) {
      const title = await titleState(key);
      if (key !== state.key) return;  // another source was picked meanwhile
      if (title) { state.title = title; draw(); }
    }
    describe();
  } catch (error) {
    facts.textContent = String(error.message);
  } finally {
    if (key === state.key) { clearTimeout(state.timer); state.timer = setTimeout(refresh, POLL_MS); }
  }
}
document.addEventListener("visibilitychange", () => { if (document.visibilityState === "visible") refresh(); });
video.addEventListener("play", () => refresh());

function currentLevel() {
  return state.hls && state.hls.levels[state.hls.currentLevel];
}

function describe() {
  const title = state.title;
  if (!title) return;
  const level = currentLevel();
  const bw = state.hls ? Math.round(state.hls.bandwidthEstimate / 1000) : 0;
  const kbits = level ? Math.round(level.bitrate / 1000) : 0;
  const playing = level ? "playing " + level.width + "x" + level.height + " at " + kbits + " kbit/s" : "starting";
  facts.textContent = playing
    + " · bandwidth estimate " + bw + " kbit/s · " + title.duration.toFixed(1) + " s";
  for (const head of document.querySelectorAll("#timeline .playhead")) {
    head.style.left = (100 * video.currentTime / title.duration) + "%";
  }
  for (const row of document.querySelectorAll("#timeline .row")) {
    row.classList.toggle("current", Boolean(level) && level.height === Number(row.dataset.height));
  }
}

function draw() {
  const title = state.title;
  const timeline = document.getElementById("timeline");
  timeline.replaceChildren(...title.renditions.map((r) => {
    const row = document.createElement("div");
    row.className = "row";
    row.dataset.height = r.resolution.split("x")[1];
    const name = document.createElement("div");
    name.className = "name";
    name.textContent = r.name + " " + r.resolution;
    const cells = document.createElement("div");
    cells.className = "cells";
    for (const s of r.segments) {
      const cell = document.createElement("div");
      cell.className = "cell " + s.state;
      cell.style.flex = String(s.duration);
      cell.title = "#" + s.n + " at " + s.start.toFixed(1) + " s: " + s.state;
      cells.append(cell);
    }
    const head = document.createElement("div");
    head.className = "playhead";
    cells.append(head);
    row.append(name, cells);
    return row;
  }));
}

if (!window.Hls || !Hls.isSupported()) { facts.textContent = "hls.js did not load from __HLS_JS_TEXT__"; }
loadSources();
</script>
</body>
</html>
"""


async def demo(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    if not settings.player.demo:
        raise web.HTTPNotFound()
    url = settings.player.hls_js_url
    body = PAGE.replace("__HLS_JS_TAG__", hls_js_tag(settings)).replace("__HLS_JS_TEXT__", html.escape(url))
    return page_response(settings, body)  # CSP with a nonce for the inline script, no Referer
