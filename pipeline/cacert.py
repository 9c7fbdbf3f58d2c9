"""``--ca-cert``: the user's CA certificate, checked, and bundled with the system's for a build.

The bundle is only ever mounted as the build secret :data:`~pipeline.request.CA_CERT_SECRET_ID`
(never in the context, never in a layer); it lives in a private temporary file for the length of
the build. The API, the CLI's ``dockerfile``/``export`` and the Dagger executor share these.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import ConfigError
from pipeline.paths import user_path
from pipeline.request import CA_CERT_SECRET_ID, SecretSpec

#: where the system CA bundle usually is (Debian/Ubuntu/Alpine, then Fedora/RHEL, then SUSE)
SYSTEM_CA_BUNDLES: tuple[str, ...] = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
)


def check_ca_cert(path: str | Path) -> Path:
    """The ``--ca-cert`` file, ``~`` expanded, if it exists and holds a PEM certificate."""
    cert = user_path(path, field="--ca-cert")
    if not cert.is_file():
        raise ConfigError(f"CA certificate {str(cert)!r} does not exist", field="--ca-cert")
    try:
        text = cert.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"CA certificate {str(cert)!r} is not readable PEM text: {exc}", field="--ca-cert"
        ) from exc
    if "-----BEGIN CERTIFICATE-----" not in text:
        raise ConfigError(
            f"{str(cert)!r} is not a PEM certificate (no BEGIN CERTIFICATE line)",
            field="--ca-cert",
        )
    return cert


def system_ca_bundle() -> Path | None:
    """The first of :data:`SYSTEM_CA_BUNDLES` that exists here, if any."""
    for candidate in SYSTEM_CA_BUNDLES:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


@contextmanager
def ca_bundle_secret(cert: Path) -> Iterator[SecretSpec]:
    """System bundle + the user's cert, in a private temp file removed afterwards.

    The file is only ever mounted as the ``ca_cert`` build secret: never in the context, never
    in a layer.
    """
    private = Path(tempfile.mkdtemp(prefix="pipeline-ca-"))
    try:
        bundle = private / "ca-bundle.crt"
        parts = []
        system = system_ca_bundle()
        if system is not None:
            parts.append(system.read_text())
        parts.append(cert.read_text())
        fd = os.open(bundle, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(part.rstrip("\n") for part in parts) + "\n")
        yield SecretSpec(id=CA_CERT_SECRET_ID, src=bundle)
    finally:
        shutil.rmtree(private, ignore_errors=True)
