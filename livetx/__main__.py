"""argv -> settings -> run. `livetx serve|url|sign|probe|keygen|sample|job` (also `python -m livetx`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

from livetx import cli_jobs, logs
from livetx.errors import ConfigError, LivetxError
from livetx.settings import Settings, generate_key_file, key_file_path, load_settings

SAMPLE_KEY = "sample.mp4"


def _settings(args: argparse.Namespace) -> Settings:
    settings = load_settings(Path(args.config) if args.config else None)
    server = settings.server
    if getattr(args, "host", None):
        server = replace(server, host=args.host)
    if getattr(args, "port", None):
        server = replace(server, port=args.port)
    storage = settings.storage
    if getattr(args, "storage", None):
        storage = replace(storage, uri=args.storage)
    return replace(settings, server=server, storage=storage)


def _signer_and_base(args: argparse.Namespace) -> tuple[Settings, str]:
    settings = _settings(args)
    base = args.base_url or settings.server.public_url
    return settings, base


def cmd_serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.processes is not None:
        if args.processes < 0:
            raise ConfigError(f"--processes must be 0 (one per core) or more, not {args.processes}")
        settings = replace(settings, server=replace(settings.server, processes=args.processes))
    count = settings.server.processes or os.cpu_count() or 1
    if count == 1:
        from livetx.app import serve

        logs.configure(settings.server.log_format)
        serve(settings, lambda: announce(settings, args.announce, args.profile))
        return 0
    from livetx.supervisor import Supervisor  # which never loads the app: a small process

    logs.configure(settings.server.log_format, process="supervisor")
    return Supervisor(settings, count, lambda: announce(settings, args.announce, args.profile)).run()


def announce(settings: Settings, key: str | None, profile: str) -> None:
    """What `livetx serve` prints once it listens (on every process's port, with several)."""
    from livetx.factories import make_signer
    from livetx.urls import master_path, signed_url

    base = settings.server.public_url
    print(f"livetx listening on {base}", flush=True)
    if key:
        url, _exp = signed_url(make_signer(settings), base, master_path(profile, key), settings.signing.default_ttl)
        print(f"  master playlist: {url}", flush=True)
        print(f"  player page:     {base}/player?src={quote(url, safe='')}", flush=True)
    if settings.api.keys:
        print(f"  signing API:     POST {base}/api/v1/sign with 'Authorization: Bearer <key in api.key_file>'", flush=True)
        if settings.player.demo:  # the key is not printed: the page asks for it
            print(f"  demo page:       {base}/ (it asks for the API key; or open {base}/#key=<API key>)", flush=True)


def _sign_from_args(args: argparse.Namespace, body: dict[str, object]) -> int:
    """`livetx url` and `livetx sign`: the same validation and signing as POST /api/v1/sign."""
    from livetx.factories import make_signer
    from livetx.urls import parse_sign_request, sign

    settings, base = _signer_and_base(args)
    for name in ("ttl", "nbf", "ip", "scope"):
        if getattr(args, name, None) is not None:
            body[name] = getattr(args, name)
    wanted = parse_sign_request(body, dict(settings.profiles), settings.signing.default_ttl, settings.signing.max_ttl)
    signed = sign(make_signer(settings), base, wanted)
    print(json.dumps(signed.to_json(), indent=2) if args.json else signed.url)
    return 0


def cmd_url(args: argparse.Namespace) -> int:
    return _sign_from_args(args, {"key": args.key, "profile": args.profile})


def cmd_sign(args: argparse.Namespace) -> int:
    return _sign_from_args(args, {"path": args.path})


def cmd_probe(args: argparse.Namespace) -> int:
    from livetx.factories import open_storages
    from livetx.media.probe import probe

    async def locate(key: str) -> str:
        async with open_storages(_settings(args)) as (sources, _):
            return await sources.media_url(key)

    target = args.source if os.path.isfile(args.source) else asyncio.run(locate(args.source))
    print(json.dumps(probe(target).to_json(), indent=2))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    config = Path(args.config) if args.config else None
    status = 0
    files = (("signing", "k1", "signing key"), ("api", "local", "API key"), ("encryption", "m1", "encryption master key"))
    for section, kid, what in files:
        path = key_file_path(config, section=section)
        if generate_key_file(path, kid, what):
            print(f"wrote a new {what} to {path}")
        elif not args.if_missing:
            print(f"{path} exists; not overwritten", file=sys.stderr)
            status = 1
    return status


def cmd_sample(args: argparse.Namespace) -> int:
    from fractions import Fraction

    from livetx.media.sample import SampleSpec, write_sample

    settings = _settings(args)
    folder = settings.path(settings.storage.uri)
    if args.if_empty and folder.is_dir() and any(p for p in folder.iterdir() if not p.name.startswith(".")):
        return 0
    target = folder / args.key
    print(f"generating {args.seconds:g} s sample into {target} ...", flush=True)
    write_sample(target, SampleSpec(seconds=args.seconds, fps=Fraction(args.fps)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="livetx", description="On-demand HLS transcoding origin.")
    parser.add_argument("--config", help="TOML config file (default: conf/livetx.toml, or $LIVETX_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--storage", help="storage URI: a directory of sources")
    serve.add_argument("--processes", type=int, help="server processes on the one port (server.processes; 0: one per core)")
    serve.add_argument("--announce", metavar="KEY", help="print a signed master URL and player URL for this source")
    serve.add_argument("--profile", default="default", help="profile for --announce")
    serve.set_defaults(func=cmd_serve)

    for name, func, helptext in (
        ("url", cmd_url, "print a signed master-playlist URL"),
        ("sign", cmd_sign, "print a signed URL for a path"),
    ):
        p = sub.add_parser(name, help=helptext)
        if name == "url":
            p.add_argument("key", help="source key")
            p.add_argument("--profile", default="default")
        else:
            p.add_argument("path", help="an /hls/ URL path of a known profile, e.g. /hls/default/sample.mp4/master.m3u8")
        p.add_argument("--scope", help="'path' (default), 'title' (all of the title), or a prefix /hls/<profile>/<key prefix>/ of the path")
        p.add_argument("--ttl", type=int, help="seconds until expiry (default: signing.default_ttl; at most signing.max_ttl)")
        p.add_argument("--nbf", type=int, help="not valid before, unix seconds")
        p.add_argument("--ip", help="bind the URL to a client address or CIDR network")
        p.add_argument("--json", action="store_true", help="print the API's JSON answer instead of the URL")
        p.add_argument("--base-url", help="scheme://host:port in front of the path")
        p.add_argument("--storage", help=argparse.SUPPRESS)
        p.set_defaults(func=func)

    probe = sub.add_parser("probe", help="describe a source (file path or source key) as JSON")
    probe.add_argument("source")
    probe.add_argument("--storage")
    probe.set_defaults(func=cmd_probe)

    keygen = sub.add_parser("keygen", help="write new key files: signing.key_file, api.key_file, encryption.key_file")
    keygen.add_argument("--if-missing", action="store_true", help="do nothing if the file exists")
    keygen.set_defaults(func=cmd_keygen)

    sample = sub.add_parser("sample", help="generate the synthetic sample video into the source directory")
    sample.add_argument("--if-empty", action="store_true", help="only if the directory has no source yet")
    sample.add_argument("--key", default=SAMPLE_KEY)
    sample.add_argument("--seconds", type=float, default=60.0)
    sample.add_argument("--fps", type=int, default=30)
    sample.add_argument("--storage")
    sample.set_defaults(func=cmd_sample)

    cli_jobs.add_parser(sub, _settings)  # `livetx job submit|status|wait|cancel|list`, over HTTP (livetx/cli_jobs.py)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except LivetxError as exc:
        print(f"livetx: {exc.message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
