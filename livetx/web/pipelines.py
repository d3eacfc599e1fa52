"""/api/v1/pipelines: create or update, read, list and delete pipelines (livetx/batch/pipelines.py)."""

from __future__ import annotations

from aiohttp import web

from livetx.web.body import json_body
from livetx.web.keys import JOBS, PIPELINES

NO_STORE = {"Cache-Control": "no-store"}


async def put_pipeline(request: web.Request) -> web.Response:
    """201 when the pipeline is new, 200 when it was updated (fields left out keep their values)."""
    pipeline, new = await request.app[PIPELINES].update(request.match_info["name"], await json_body(request))
    request.app[JOBS].pipelines_changed()  # this process's runner reads it now (the others at their next look)
    return web.json_response(pipeline.to_json(), status=201 if new else 200, headers=NO_STORE)


async def get_pipeline(request: web.Request) -> web.Response:
    pipeline = await request.app[PIPELINES].get(request.match_info["name"])
    return web.json_response(pipeline.to_json(), headers=NO_STORE)


async def list_pipelines(request: web.Request) -> web.Response:
    pipelines = await request.app[PIPELINES].list()
    return web.json_response({"Pipelines": [p.to_json() for p in pipelines]}, headers=NO_STORE)


async def delete_pipeline(request: web.Request) -> web.Response:
    await request.app[PIPELINES].delete(request.match_info["name"])
    request.app[JOBS].pipelines_changed()
    return web.Response(status=204, headers=NO_STORE)
