"""Command line of the offline bundle builder (see k8s_bundle/__init__.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from k8s_cluster.paths import cache_root

from . import bundle, debs, gobuild


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bin/build-bundle",
        description="Build an offline bundle of Kubernetes from upstream source (Go module proxy).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("build", help="build (or find cached) the bundle of a version")
    make.add_argument("version", help="Kubernetes version X.Y.Z, e.g. 1.37.2")
    make.add_argument("--out", type=Path, help="bundle folder (default: the cache, by version)")
    make.add_argument(
        "--debian-mirror",
        default=bundle.DEFAULT_MIRROR,
        help="Debian mirror for the network images' iptables (default: %(default)s)",
    )
    commands.add_parser("list", help="list the bundles in the cache")
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list()
    started = time.monotonic()
    try:
        summary = bundle.build(args.version, args.out, args.debian_mirror, log=_log)
    except (ValueError, gobuild.BuildError, debs.RepositoryError, OSError) as err:
        print(f"build-bundle: {err}", file=sys.stderr)
        return 1
    out = args.out or bundle.default_out(summary["kubernetes_version"][1:])
    print(f"bundle {summary['kubernetes_version']}: {out} ({time.monotonic() - started:.0f} s)")
    print(f"  package_repository: {out / 'repository'}")
    print(f"  image_bundle:       {out / 'images'}")
    print(f"  cni_manifest:       {out / summary['cni_manifest']}")
    return 0


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def _list() -> int:
    for manifest in sorted((cache_root() / "bundles").glob("*/bundle.json")):
        summary = json.loads(manifest.read_text())
        size = sum(p.stat().st_size for p in manifest.parent.rglob("*") if p.is_file())
        print(f"{summary['kubernetes_version']}  {size / 2**20:8.0f} MiB  {manifest.parent}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
