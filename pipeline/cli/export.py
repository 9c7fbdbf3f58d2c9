"""``python -m pipeline export``: write a self-contained build context for any engine."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from pipeline.cacert import system_ca_bundle
from pipeline.cli.command import Command
from pipeline.cli.dockerfile import add_render_arguments, render_from_args
from pipeline.context import check_output_dir, write_context
from pipeline.rendering import CA_CERT_SECRET_ID

DESCRIPTION = """\
Write a build context to DIR: the bento's files, the rendered Dockerfile and
env/docker/entrypoint.sh. `docker build DIR` (or podman/buildah/buildctl) uses it as is; no
daemon is needed to export. DIR must not exist or be empty; the export is all-or-nothing.

examples:
  python -m pipeline export examples/hello -o /tmp/hello-ctx && docker build /tmp/hello-ctx
  python -m pipeline export examples/secret-mount -o /tmp/ctx
      docker build --secret id=aws,src=$HOME/.aws/credentials /tmp/ctx
  python -m pipeline export my_service:latest -o ctx --no-buildkit && buildah bud ctx
"""


def _configure(parser: argparse.ArgumentParser) -> None:
    add_render_arguments(parser)
    parser.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        required=True,
        help="directory to create (must not exist or be empty)",
    )


def _run(args: argparse.Namespace) -> int:
    check_output_dir(args.output)  # before a project is built into the store
    bento, dockerfile = render_from_args(args)
    path = write_context(bento, args.output, dockerfile)
    print(path)
    command = ["docker", "build"]
    if isinstance(args.ca_cert, str):
        # the secret is the system bundle plus the certificate, as build --ca-cert passes it
        system = system_ca_bundle() or Path("/etc/ssl/certs/ca-certificates.crt")
        bundle = "ca-bundle.pem"
        print(
            "make the CA bundle (keep it out of the context): "
            f"cat {shlex.quote(str(system))} {shlex.quote(str(Path(args.ca_cert).absolute()))}"
            f" > {bundle}",
            file=sys.stderr,
        )
        command += ["--secret", f"id={CA_CERT_SECRET_ID},src={bundle}"]
    elif args.ca_cert:
        command += ["--secret", f"id={CA_CERT_SECRET_ID},src=/etc/ssl/certs/ca-certificates.crt"]
    print(f"build it with: {shlex.join([*command, str(path)])}", file=sys.stderr)
    return 0


COMMAND = Command(
    name="export",
    help="write a self-contained build context (bento files + Dockerfile + entrypoint)",
    description=DESCRIPTION,
    configure=_configure,
    run=_run,
)
