"""argv -> settings -> run. `livetx serve|url|sign|probe|keygen|sample` (also `python -m livetx`)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import quote

from livetx.errors import LivetxError
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
    from aiohttp import web

    from livetx.app import AccessLogger, create_app, make_signer
    from livetx.urls import master_path, signed_url

    settings = _settings(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = create_app(settings)

    def announce(_: str) -> None:
        base = settings.server.public_url
        print(f"livetx listening on {base}", flush=True)
        if args.announce:
            url, _exp = signed_url(make_signer(settings), base, master_path(args.profile, args.announce), settings.signing.default_ttl)
            print(f"  master playlist: {url}", flush=True)
            print(f"  player page:     {base}/player?src={quote(url, safe='')}", flush=True)

    loop = _new_loop()
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        print=announce,
        access_log_class=AccessLogger,
        loop=loop,
        shutdown_timeout=30,
    )
    return 0


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover - uvloop is a dependency, but not on every platform
        return asyncio.new_event_loop()


def cmd_url(args: argparse.Namespace) -> int:
    from livetx.app import build_profiles, make_signer
    from livetx.urls import master_path, signed_url

    settings, base = _signer_and_base(args)
    if args.profile not in build_profiles(settings):
        raise LivetxError(f"no profile named {args.profile!r}")
    url, _ = signed_url(make_signer(settings), base, master_path(args.profile, args.key), args.ttl or settings.signing.default_ttl)
    print(url)
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    from livetx.app import make_signer
    from livetx.urls import signed_url

    settings, base = _signer_and_base(args)
    url, _ = signed_url(make_signer(settings), base, args.path, args.ttl or settings.signing.default_ttl, scope=args.scope)
    print(url)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from livetx.app import make_storages
    from livetx.media.probe import probe

    target = args.source
    if not os.path.isfile(target):
        sources, _ = make_storages(_settings(args))
        target = sources.media_url(target)
    print(json.dumps(probe(target).to_json(), indent=2))
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    path = key_file_path(Path(args.config) if args.config else None)
    if generate_key_file(path):
        print(f"wrote a new signing key to {path}")
    elif not args.if_missing:
        print(f"{path} exists; not overwritten", file=sys.stderr)
        return 1
    return 0


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
            p.add_argument("path", help="absolute URL path, e.g. /hls/default/sample.mp4/master.m3u8")
            p.add_argument("--scope", help="sign a path prefix (ending in /) instead of one path")
        p.add_argument("--ttl", type=int, help="seconds until expiry (default: signing.default_ttl)")
        p.add_argument("--base-url", help="scheme://host:port in front of the path")
        p.add_argument("--storage", help=argparse.SUPPRESS)
        p.set_defaults(func=func)

    probe = sub.add_parser("probe", help="describe a source (file path or source key) as JSON")
    probe.add_argument("source")
    probe.add_argument("--storage")
    probe.set_defaults(func=cmd_probe)

    keygen = sub.add_parser("keygen", help="write a new signing key file (signing.key_file)")
    keygen.add_argument("--if-missing", action="store_true", help="do nothing if the file exists")
    keygen.set_defaults(func=cmd_keygen)

    sample = sub.add_parser("sample", help="generate the synthetic sample video into the source directory")
    sample.add_argument("--if-empty", action="store_true", help="only if the directory has no source yet")
    sample.add_argument("--key", default=SAMPLE_KEY)
    sample.add_argument("--seconds", type=float, default=60.0)
    sample.add_argument("--fps", type=int, default=30)
    sample.add_argument("--storage")
    sample.set_defaults(func=cmd_sample)
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
