"""What the Dagger module's functions do, on the same code path as ``--backend dagger``.

The module (``.dagger/src/bento_pipeline_dagger``) receives a bento as a ``dagger.Directory``
and secrets as ``dagger.Secret``. These helpers bring the bento onto the function's filesystem,
resolve and render it with :func:`pipeline.api.prepare` and :func:`pipeline.api.build_request`
(exactly what the CLI does), and hand the request to :mod:`pipeline.dagger.graph` with the
module runtime's ``dag``. No second implementation of rendering or building.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import dagger
from attrs import evolve

from pipeline.dagger import graph
from pipeline.dagger.executor import read_secrets
from pipeline.dagger.spec import DaggerBuildSpec, check_secret_mounts, spec_from_request
from pipeline.errors import ConfigError
from pipeline.prepared import build_request, prepare


async def secret_id(secret: dagger.Secret) -> str:
    """The Dockerfile secret id for a secret passed on the ``dagger call`` command line.

    CLI secrets are anonymous (``--secrets env://HF_TOKEN``): their id is the variable name
    or the file's base name. Named secrets (``setSecret``) keep their name.
    """
    name = await secret.name()
    if name:
        return name
    uri = await secret.uri()
    scheme, sep, rest = uri.partition("://")
    if sep and scheme in ("env", "file") and rest:
        return Path(rest).name if scheme == "file" else rest
    raise ConfigError(
        f"cannot tell which Dockerfile secret id {uri!r} is; pass --secret-ids with one id per "
        "secret, in order",
        field="secret-ids",
    )


async def secret_plaintexts(
    secrets: Sequence[dagger.Secret], ids: Sequence[str] = ()
) -> dict[str, str]:
    """Plaintexts by Dockerfile id (re-wrapped by :func:`graph.named_secrets`; never logged)."""
    if ids and len(ids) != len(secrets):
        raise ConfigError(
            f"got {len(secrets)} secret(s) but {len(ids)} secret id(s); give one id per secret",
            field="secret-ids",
        )
    names = list(ids) if ids else [await secret_id(s) for s in secrets]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"secret id {repeated[0]!r} is given twice", field="secret-ids")
    return {name: await secret.plaintext() for name, secret in zip(names, secrets, strict=True)}


async def export_bento(bento: dagger.Directory, dest: Path) -> Path:
    """Write the bento directory onto this process's filesystem (the function container)."""
    await bento.export(str(dest))
    return dest


@contextlib.asynccontextmanager
async def prepared_build(
    bento: dagger.Directory, *, ca_cert: dagger.File | None = None, **options: Any
) -> AsyncIterator[tuple[str, DaggerBuildSpec, dict[str, str]]]:
    """The rendered Dockerfile, the build spec and the request's own secrets (the ``--ca-cert``
    bundle) for ``bento``, with a context on disk.

    ``options`` are :func:`pipeline.api.parse_options` keywords (platforms, build_args, target,
    labels, ...). The context directory exists only inside the ``async with`` block.
    """
    with tempfile.TemporaryDirectory(prefix="bento-pipeline-") as tmp:
        bento_dir = await export_bento(bento, Path(tmp) / "bento")
        if ca_cert is not None:
            options["ca_cert"] = Path(await ca_cert.export(str(Path(tmp) / "ca-cert.pem")))
        prepared = prepare(bento_dir, backend="dagger", **options)
        with build_request(prepared) as request:
            yield prepared.dockerfile, spec_from_request(request), read_secrets(request.secrets)


async def dockerfile(
    bento: dagger.Directory, *, ca_cert: dagger.File | None = None, **options: Any
) -> str:
    """The Dockerfile the build of ``bento`` uses."""
    async with prepared_build(bento, ca_cert=ca_cert, **options) as (text, _spec, _secrets):
        return text


async def build_variants(
    client: dagger.Client,
    bento: dagger.Directory,
    *,
    secrets: Sequence[dagger.Secret] = (),
    secret_ids: Sequence[str] = (),
    ca_cert: dagger.File | None = None,
    **options: Any,
) -> list[dagger.Container]:
    """One container per platform, built from ``bento`` exactly like ``--backend dagger``."""
    plaintexts = await secret_plaintexts(secrets, secret_ids)
    async with prepared_build(bento, ca_cert=ca_cert, **options) as (text, spec, own):
        clash = sorted(set(own) & set(plaintexts))
        if clash:
            raise ConfigError(
                f"secret id {clash[0]!r} is reserved for --ca-cert", field="secret-ids"
            )
        plaintexts = {**own, **plaintexts}
        spec = evolve(spec, secret_ids=tuple(plaintexts))
        check_secret_mounts(text, spec.secret_ids)
        # load the context now: the temporary directory is gone once this block ends
        context = await graph.context_directory(client, spec, text).sync()
    named = graph.named_secrets(client, plaintexts)
    return graph.build_variants(context, spec, [named[i] for i in spec.secret_ids])
