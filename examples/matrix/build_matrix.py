"""A matrix build from Python: examples/hello for amd64 and arm64, Python 3.11 and 3.12.

    python examples/matrix/build_matrix.py --backend podman            # build (4 images)
    python examples/matrix/build_matrix.py --backend podman --dry-run  # commands only

The arm64 cells need qemu binfmt emulation on an x86_64 machine (docs/matrix.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pipeline
from pipeline.matrix import dry_run_matrix

HELLO = Path(__file__).resolve().parents[1] / "hello"
AXES: dict[str, Any] = {
    "platforms": ["linux/amd64", "linux/arm64"],
    "python_versions": ["3.11", "3.12"],
    "distros": ["debian"],
    "tag_template": "localhost/hello-matrix:{python}-{arch}",
}


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backend", help="engine (default: as `python -m pipeline build`)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args()
    try:
        if args.dry_run:
            backend, runs = dry_run_matrix(HELLO, backend=args.backend, **AXES)
            for run in runs:
                print(
                    f"{run.planned.cell.key}: {run.dry_run.command if run.dry_run else 'skipped'}"
                )
            return 0
        result = pipeline.matrix(HELLO, backend=args.backend, concurrency=2, **AXES)
    except pipeline.PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    for row in result.rows:
        print(f"{row.cell.key:24} {row.status:9} {row.tag or '-':40} {row.duration:5.1f}s")
        if row.status == "failed":
            print(f"  {row.error}", file=sys.stderr)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
