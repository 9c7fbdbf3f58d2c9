"""``python -m pipeline base-image``: a python base image from Debian packages, no registry."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pipeline.baseimage import build_base_image
from pipeline.basespec import DEFAULT_SUITE, ENGINES, PLATFORMS, SUITES, resolve_spec
from pipeline.cli.command import Command, add_json_flag

DESCRIPTION = """\
Build a python base image from Debian packages (mmdebstrap; no container registry needed),
laid out like the official python:X.Y-slim: python, python3 and pip in /usr/local/bin, pip
installs allowed, LANG=C.UTF-8, CMD ["python3"].

suites: {suites}
platforms: {platforms} (foreign ones through qemu-user-static binfmt)

Output: loaded into the local engine (default; docker if its daemon answers, else podman),
--oci-archive FILE, and/or --push REF (a manifest list for several platforms).
SOURCE_DATE_EPOCH fixes file times and the image's created time (see docs/base-image.md).
Needs root and mmdebstrap.
""".format(
    suites=", ".join(f"{s.name} (python {s.python})" for s in SUITES.values()),
    platforms=", ".join(PLATFORMS),
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--suite",
        default=DEFAULT_SUITE,
        help=f"Debian suite (default {DEFAULT_SUITE}): {', '.join(SUITES)}",
    )
    parser.add_argument(
        "--platform",
        help="comma-separated platforms, e.g. linux/amd64,linux/arm64 (default: this machine's)",
    )
    parser.add_argument("--tag", help="image name:tag (default python:X.Y-slim)")
    parser.add_argument(
        "--load",
        nargs="?",
        const="auto",
        choices=[*ENGINES, "auto"],
        help="load into a local engine (the default output when no other is given)",
    )
    parser.add_argument("--oci-archive", metavar="FILE", help="write an OCI archive (tar)")
    parser.add_argument(
        "--push", metavar="REF", help="push to a registry, e.g. host:5000/python:3.11-slim"
    )
    parser.add_argument(
        "--tls-verify",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="verify the registry's TLS certificate on --push (default: yes, except for "
        "127.0.0.1/localhost registries, which are plain HTTP)",
    )
    parser.add_argument("--mirror", metavar="URL", help="Debian mirror (default deb.debian.org)")
    parser.add_argument(
        "--security-mirror",
        metavar="URL",
        help="Debian security mirror ('none' for none; default: Debian's with the default mirror)",
    )
    parser.add_argument(
        "--snapshot",
        metavar="TIMESTAMP",
        help="pin packages to snapshot.debian.org at TIMESTAMP (YYYYMMDD[THHMMSSZ])",
    )
    parser.add_argument(
        "--ca-cert",
        metavar="FILE",
        action="append",
        default=[],
        help="extra CA certificate(s) (PEM) for the image's trust store, pip and uv; repeatable",
    )
    parser.add_argument(
        "--cache-dir",
        metavar="DIR",
        type=Path,
        help="reuse layers bootstrapped before with the same inputs (stored in DIR)",
    )
    parser.add_argument(
        "--output", choices=("text", "json"), default="text", help="result format on stdout"
    )
    add_json_flag(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="show mmdebstrap's output")


def run(args: argparse.Namespace) -> int:
    spec = resolve_spec(
        suite=args.suite,
        platforms=args.platform,
        tag=args.tag,
        load=args.load,
        oci_archive=args.oci_archive,
        push=args.push,
        tls_verify=args.tls_verify,
        mirror=args.mirror,
        security_mirror=args.security_mirror,
        snapshot=args.snapshot,
        ca_cert_files=args.ca_cert,
        source_date_epoch=os.environ.get("SOURCE_DATE_EPOCH"),
    )
    result = build_base_image(spec, cache_dir=args.cache_dir, verbose=args.verbose)
    if args.output == "json":
        print(
            json.dumps(
                {
                    "tag": result.tag,
                    "platforms": list(result.platforms),
                    "digest": result.digest,
                    "outputs": [{"kind": o.kind, "target": o.target} for o in result.outputs],
                }
            )
        )
    else:
        where = ", ".join(f"{o.kind} {o.target}" for o in result.outputs)
        print(f"{result.tag} ({', '.join(result.platforms)}) {result.digest} -> {where}")
    return 0


COMMAND = Command(
    name="base-image",
    help="build a python base image from Debian packages (no registry needed)",
    description=DESCRIPTION,
    configure=configure,
    run=run,
)
