"""Building Python base images from Debian packages, without any container registry: the
bootstrap, the layer cache, and delivery to an engine, an OCI archive or a registry.

``python -m pipeline base-image`` bootstraps a minimal Debian root filesystem with mmdebstrap
(python3, python3-venv, pip, ca-certificates), lays it out like the official
``python:X.Y-slim`` images (``python``/``python3``/``pip`` in ``/usr/local/bin``, pip installs
allowed, ``LANG=C.UTF-8``, ``CMD ["python3"]``), and writes the OCI image itself: one
deterministic layer per platform, an image config, a manifest per platform and an image index
when several platforms are given. The result is loaded into a local engine, written as an OCI
archive, or pushed to a registry (a manifest list for several platforms).

This module is the effectful shell (:func:`build_base_image`: prerequisites, bootstrap, layer
cache, delivery); what the image is comes from :mod:`pipeline.basespec` (pure) and its bytes
are written by :mod:`pipeline.ocilayout`. See docs/base-image.md.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from attrs import frozen

from pipeline.backends.process import probe, run_lines
from pipeline.basespec import (
    ENGINES,
    EXTRA_CA_DIR,
    IMAGE_PATH,
    REF_NAME,
    SYSTEM_CA_BUNDLE,
    BaseImageSpec,
    LayerBlob,
    Output,
    Platform,
    cache_key,
    canonical_json,
    created_timestamp,
    host_platform,
    mmdebstrap_argv,
    release_urls,
    split_pem_certificates,
)
from pipeline.errors import BackendError, BuildError, ConfigError
from pipeline.ocilayout import (
    docker_archive_manifest,
    tar_directory,
    write_layer,
    write_oci_layout,
)


@frozen
class BaseImageResult:
    tag: str
    platforms: tuple[str, ...]
    digest: str  # of the manifest (one platform) or the image index (several)
    outputs: tuple[Output, ...]
    layout: Path | None = None  # OCI layout directory, when kept


Progress = Callable[[str], None]


def _stderr_progress(message: str) -> None:
    print(f"base-image: {message}", file=sys.stderr, flush=True)


def check_prerequisites(spec: BaseImageSpec, *, timeout: float = 15.0) -> None:
    """Everything that can fail before any work starts: tools, root, binfmt, engine, mirror."""
    if os.geteuid() != 0:
        hint = (
            "run it as root (e.g. with sudo); it bootstraps with mmdebstrap --mode=root and chroot"
        )
        if shutil.which("mmdebstrap") is None:
            hint = "install it as root: apt-get install mmdebstrap; then " + hint
        raise BackendError("base-image must run as root", hint=hint)
    if shutil.which("mmdebstrap") is None:
        raise BackendError(
            "mmdebstrap is not installed (needed to bootstrap the Debian root filesystem)",
            hint="apt-get install mmdebstrap (and qemu-user-static binfmt-support for arm64)",
        )
    host = host_platform()
    foreign = [p for p in spec.platforms if p != host]
    if foreign and shutil.which("arch-test") is None:
        raise BackendError(
            f"arch-test is not installed (mmdebstrap needs it for {foreign[0].name})",
            hint="apt-get install arch-test qemu-user-static binfmt-support",
        )
    for platform in foreign:
        if not _binfmt_enabled(platform.qemu):
            raise BackendError(
                f"cannot run {platform.name} binaries here: binfmt_misc entry "
                f"{platform.qemu!r} is missing or disabled",
                hint=(
                    "apt-get install qemu-user-static binfmt-support; mount -t binfmt_misc "
                    f"binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable {platform.qemu}"
                ),
            )
    for output in spec.outputs:
        if output.kind == "push" and shutil.which("skopeo") is None:
            raise BackendError(
                "--push needs skopeo to upload the image", hint="apt-get install skopeo"
            )
        if output.kind == "load" and output.target != "auto":
            _check_engine(output.target)
    for option, url in release_urls(spec):
        _check_mirror(url, option=option, timeout=timeout)


def _binfmt_enabled(name: str) -> bool:
    entry = Path("/proc/sys/fs/binfmt_misc") / name
    try:
        return entry.read_text().splitlines()[0].strip() == "enabled"
    except (OSError, IndexError):
        return False


def _check_engine(engine: str) -> None:
    if shutil.which(engine) is None:
        raise BackendError(f"--load {engine}: {engine} is not installed")
    proc = probe([engine, "info", "--format", "{{json .}}"], timeout=None)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise BackendError(f"--load {engine}: the engine does not answer: {tail[0]}")


def pick_engine() -> str:
    """The local engine for ``--load auto``: a docker daemon that answers, else podman."""
    for engine in ENGINES:
        if shutil.which(engine) is None:
            continue
        if probe([engine, "info"], timeout=None).ok:
            return engine
    raise BackendError(
        "no local engine to load the image into (docker daemon not answering, podman absent)",
        hint="give --oci-archive FILE or --push REF instead, or start docker",
    )


def _check_mirror(url: str, *, option: str, timeout: float) -> None:
    if url.startswith("file:"):
        path = Path(urllib.request.url2pathname(url[len("file:") :]))
        if not path.exists() and not path.with_name("Release").exists():
            raise ConfigError(f"mirror has no {path}", field=option)
        return
    request = urllib.request.Request(url, method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return
    except urllib.error.HTTPError as exc:
        problem = f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise ConfigError(
        f"mirror unreachable: {url}: {problem}",
        field=option,
        hint="check the URL and the network; the machine's own mirror is in "
        "/etc/apt/sources.list.d/",
    )


def _run_streaming(
    argv: Sequence[str],
    *,
    step: str,
    verbose: bool,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    prefix: str = "",
) -> None:
    """Run ``argv``, its output echoed to stderr when ``verbose``; a failure is a BuildError
    with the last lines (``env``, ``inherit_env``: as :func:`run_lines` takes them)."""

    def echo(line: str) -> None:
        print(f"{prefix}{line}", file=sys.stderr, flush=True)

    outcome = run_lines(
        argv, env=env, inherit_env=inherit_env, on_line=echo if verbose else None, tail_lines=25
    )
    if outcome.returncode != 0:
        raise BuildError(
            f"{argv[0]} exited with {outcome.returncode}",
            backend="base-image",
            step=step,
            output_tail=[line.rstrip() for line in outcome.tail],
        )


def bootstrap_rootfs(
    spec: BaseImageSpec, platform: Platform, dest: Path, *, verbose: bool = False
) -> None:
    """mmdebstrap the rootfs, then make it look like python:X.Y-slim and add the CA certs."""
    env: dict[str, str] = {}
    if spec.source_date_epoch is not None:
        env["SOURCE_DATE_EPOCH"] = str(spec.source_date_epoch)
    _run_streaming(
        mmdebstrap_argv(spec, platform, dest),
        step=f"mmdebstrap {spec.suite.name} {platform.deb_arch}",
        verbose=verbose,
        env=env,
        prefix=f"[{platform.deb_arch}] ",
    )
    python = spec.suite.python
    local_bin = dest / "usr/local/bin"
    local_bin.mkdir(parents=True, exist_ok=True)
    links = {
        "python": "/usr/bin/python3",
        "python3": "/usr/bin/python3",
        f"python{python}": f"/usr/bin/python{python}",
        "pip": "/usr/bin/pip3",
        "pip3": "/usr/bin/pip3",
    }
    for name, target in links.items():
        link = local_bin / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)
    # pip installs into the system interpreter are the point of a python base image.
    (dest / f"usr/lib/python{python}/EXTERNALLY-MANAGED").unlink(missing_ok=True)
    if spec.ca_certs:
        _add_ca_certs(spec, dest, verbose=verbose)


def _add_ca_certs(spec: BaseImageSpec, rootfs: Path, *, verbose: bool) -> None:
    bundle = rootfs / SYSTEM_CA_BUNDLE.lstrip("/")
    try:
        present = set(split_pem_certificates(bundle.read_text(), source=str(bundle)))
    except (OSError, ConfigError):
        present = set()
    extra = [cert for cert in spec.ca_certs if cert not in present]
    if not extra:
        return
    target = rootfs / EXTRA_CA_DIR
    target.mkdir(parents=True, exist_ok=True)
    for number, cert in enumerate(extra):
        (target / f"extra-{number:03d}.crt").write_text(cert)
    _run_streaming(
        ["chroot", str(rootfs), "/usr/sbin/update-ca-certificates"],
        step="update-ca-certificates",
        verbose=verbose,
        env={"PATH": IMAGE_PATH, "LANG": "C.UTF-8"},
        inherit_env=False,
    )


def _python_version(rootfs: Path, minor: str) -> str:
    """The upstream version of the rootfs' python3.X package (3.11.2 of 3.11.2-6+deb12u6)."""
    status = (rootfs / "var/lib/dpkg/status").read_text(errors="replace")
    for block in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if ": " in line and line[0] != " "
        )
        if fields.get("Package") == f"python{minor}" and "Version" in fields:
            return fields["Version"].split("-", 1)[0].split("+", 1)[0]
    return minor


def build_layer(
    spec: BaseImageSpec,
    platform: Platform,
    workdir: Path,
    *,
    cache_dir: Path | None,
    progress: Progress,
    verbose: bool,
) -> LayerBlob:
    """The platform's layer: from ``cache_dir`` when present, else bootstrapped now."""
    key = cache_key(spec, platform)
    if cache_dir is not None:
        meta_path = cache_dir / f"{key}.json"
        blob = cache_dir / f"{key}.tar.gz"
        if meta_path.exists() and blob.exists():
            meta = json.loads(meta_path.read_text())
            progress(f"{platform.name}: layer from cache {blob}")
            return LayerBlob(blob, meta["digest"], meta["diff_id"], meta["size"], meta["python"])
    rootfs = workdir / f"rootfs-{platform.deb_arch}"
    progress(f"{platform.name}: bootstrapping Debian {spec.suite.name} from {spec.mirror}")
    try:
        bootstrap_rootfs(spec, platform, rootfs, verbose=verbose)
        python_version = _python_version(rootfs, spec.suite.python)
        progress(f"{platform.name}: writing the layer (python {python_version})")
        blob = workdir / f"layer-{platform.deb_arch}.tar.gz"
        digest, diff_id, size = write_layer(rootfs, blob, source_date_epoch=spec.source_date_epoch)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    layer = LayerBlob(blob, digest, diff_id, size, python_version)
    if cache_dir is not None:
        cache_dir.mkdir(parents=True, exist_ok=True)
        # Blob first, then its metadata, each renamed into place: a reader sees a complete
        # entry or none, also with several builds filling the cache at once.
        meta = {"digest": digest, "diff_id": diff_id, "size": size, "python": python_version}
        for name, write in (
            (f"{key}.tar.gz", lambda path: shutil.copyfile(blob, path)),
            (f"{key}.json", lambda path: path.write_text(json.dumps(meta))),
        ):
            fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=f".{name}.")
            os.close(fd)
            try:
                write(Path(tmp))
                Path(tmp).replace(cache_dir / name)
            finally:
                Path(tmp).unlink(missing_ok=True)
    return layer


def load_into_engine(engine: str, archive: Path, *, verbose: bool) -> None:
    with archive.open("rb") as handle:
        proc = probe([engine, "load"], stdin_file=handle, timeout=None)
    if verbose and proc.stdout:
        print(proc.stdout, end="", file=sys.stderr)
    if proc.returncode != 0:
        raise BuildError(
            f"{engine} load failed",
            backend="base-image",
            step=f"{engine} load",
            output_tail=(proc.stdout + proc.stderr).strip().splitlines()[-15:],
        )


def push_layout(layout: Path, ref: str, *, tls_verify: bool, verbose: bool) -> None:
    argv = [
        "skopeo",
        "copy",
        "--all",
        "--quiet",
        f"--dest-tls-verify={'true' if tls_verify else 'false'}",
        f"oci:{layout}:latest",
        f"docker://{ref}",
    ]
    _run_streaming(argv, step=f"push {ref}", verbose=verbose)


def build_base_image(
    spec: BaseImageSpec,
    *,
    cache_dir: Path | None = None,
    progress: Progress = _stderr_progress,
    verbose: bool = False,
    check: bool = True,
) -> BaseImageResult:
    """Bootstrap, assemble and deliver the image. Nothing is tagged or pushed unless all of
    the image was built; an OCI archive appears whole or not at all."""
    if check:
        check_prerequisites(spec)
    outputs = tuple(
        Output("load", pick_engine()) if o.kind == "load" and o.target == "auto" else o
        for o in spec.outputs
    )
    created = created_timestamp(spec.source_date_epoch)
    with tempfile.TemporaryDirectory(prefix="pipeline-base-image-") as tmp:
        workdir = Path(tmp)
        # Platforms bootstrap concurrently: the foreign one is CPU-bound under qemu, the
        # native one mostly waits on downloads.
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(spec.platforms)) as pool:
            futures = [
                pool.submit(
                    build_layer,
                    spec,
                    platform,
                    workdir,
                    cache_dir=cache_dir,
                    progress=progress,
                    verbose=verbose,
                )
                for platform in spec.platforms
            ]
            concurrent.futures.wait(futures)
        layers = [(p, f.result()) for p, f in zip(spec.platforms, futures, strict=True)]
        layout = workdir / "oci"
        digest, manifests = write_oci_layout(spec, layers, layout, created=created)
        mtime = spec.source_date_epoch if spec.source_date_epoch is not None else 0
        for output in outputs:
            if output.kind == "oci-archive":
                progress(f"writing OCI archive {output.target}")
                dest = Path(output.target)
                index = json.loads((layout / "index.json").read_text())
                index["manifests"][0]["annotations"][REF_NAME] = spec.tag
                tar_directory(
                    layout, dest, mtime=mtime, extra={"index.json": canonical_json(index)}
                )
            elif output.kind == "load":
                progress(f"loading {spec.tag} into {output.target}")
                archive = workdir / "docker-archive.tar"
                tar_directory(
                    layout,
                    archive,
                    mtime=mtime,
                    extra={"manifest.json": docker_archive_manifest(spec.tag, manifests[0])},
                    # a plain docker-archive: with index.json podman would read it as OCI
                    skip=frozenset({"index.json", "oci-layout"}),
                )
                load_into_engine(output.target, archive, verbose=verbose)
            else:
                progress(f"pushing {output.target} ({', '.join(p.name for p in spec.platforms)})")
                push_layout(layout, output.target, tls_verify=output.tls_verify, verbose=verbose)
    return BaseImageResult(
        tag=spec.tag,
        platforms=tuple(p.name for p in spec.platforms),
        digest=digest,
        outputs=outputs,
    )
