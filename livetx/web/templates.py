"""/api/v1/templates: create or replace, read, list and delete templates (livetx/batch/templates.py)."""

from __future__ import annotations

from aiohttp import web

from livetx.batch.templates import parse_template
from livetx.web.body import json_body
from livetx.web.keys import TEMPLATES

NO_STORE = {"Cache-Control": "no-store"}


async def put_template(request: web.Request) -> web.Response:
    """201 when the template is new, 200 when it replaced one; 400 naming the field otherwise."""
    store = request.app[TEMPLATES]
    template = parse_template(request.match_info["name"], await json_body(request))
    new = not await store.exists(template.name)
    await store.put(template)
    body = {**template.to_json(), "Resolved": dict(await store.resolve(template.name))}
    return web.json_response(body, status=201 if new else 200, headers=NO_STORE)


async def get_template(request: web.Request) -> web.Response:
    """The template as written, and `Resolved`: its parameters with its bases' (null when its
    chain no longer resolves, with `Problem` saying why)."""
    store = request.app[TEMPLATES]
    template = await store.get(request.match_info["name"])
    return web.json_response({**template.to_json(), **await store.resolution(template)}, headers=NO_STORE)


async def list_templates(request: web.Request) -> web.Response:
    templates = await request.app[TEMPLATES].list()
    return web.json_response({"Templates": [t.to_json() for t in templates]}, headers=NO_STORE)


async def delete_template(request: web.Request) -> web.Response:
    await request.app[TEMPLATES].delete(request.match_info["name"])
    return web.Response(status=204, headers=NO_STORE)
