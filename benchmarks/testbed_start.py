"""Time a cold and a warm ``scripts/testbed up`` and print a table.

    python benchmarks/testbed_start.py [--warm-runs 3] [--no-layer-cache]

cold  = after ``scripts/testbed down`` (stops the dockerd and registry the test bed started)
        and removing the registry's storage (the pushed python:3.11-slim manifest list and all
        blobs): ``up`` restarts the daemons and rebuilds + pushes the base image. Installed
        Debian packages stay. The bootstrapped layers in /var/cache/pipeline-testbed stay too,
        unless ``--no-layer-cache`` (then both platforms are bootstrapped again with mmdebstrap,
        arm64 under qemu: minutes).
warm  = ``up`` again with everything running: only state checks.

Needs root; it stops and restarts the test bed's daemons, so do not run it while other tests
use the engines.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTBED = REPO / "scripts" / "testbed"
REGISTRY_STORAGE = Path("/var/lib/pipeline-testbed/registry")
LAYER_CACHE = Path("/var/cache/pipeline-testbed/base-image")


def testbed(*args: str) -> float:
    start = time.monotonic()
    proc = subprocess.run([str(TESTBED), *args], capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"scripts/testbed {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warm-runs", type=int, default=3)
    parser.add_argument(
        "--no-layer-cache",
        action="store_true",
        help="also set the bootstrapped layer cache aside for the cold run (restored after)",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark stops and starts the test bed's daemons")

    testbed("up")  # make sure everything is installed, so "cold" does not time apt-get
    testbed("down")
    shutil.rmtree(REGISTRY_STORAGE, ignore_errors=True)
    aside: Path | None = None
    if args.no_layer_cache and LAYER_CACHE.exists():
        aside = Path(tempfile.mkdtemp(prefix="layer-cache-", dir=LAYER_CACHE.parent))
        LAYER_CACHE.rename(aside / "base-image")
    try:
        cold = testbed("up")
    finally:
        if aside is not None:
            shutil.rmtree(LAYER_CACHE, ignore_errors=True)
            (aside / "base-image").rename(LAYER_CACHE)
            aside.rmdir()
    warm = [testbed("up") for _ in range(args.warm_runs)]

    cold_meaning = (
        "daemons stopped, registry emptied, layer cache set aside (full mmdebstrap)"
        if args.no_layer_cache
        else "daemons stopped, registry emptied, layer cache kept"
    )
    rows = [("cold", f"{cold:.1f}", cold_meaning)]
    rows += [
        (f"warm #{i + 1}", f"{t:.2f}", "everything up: state checks only")
        for i, t in enumerate(warm)
    ]
    width = max(len(r[2]) for r in rows)
    print(f"{'start':<8} {'seconds':>8}  {'what it means':<{width}}")
    print(f"{'-' * 8} {'-' * 8}  {'-' * width}")
    for name, seconds, meaning in rows:
        print(f"{name:<8} {seconds:>8}  {meaning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
