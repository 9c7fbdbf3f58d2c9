"""The Dagger API calls of a build, shared by the executor and the Dagger module.

Every function takes an already connected client (``dagger.dag`` inside
``dagger.connection()``, or the module runtime's ``dag``) and lazy Dagger objects; none of them
connects, reads files or handles errors. The executor (:mod:`pipeline.dagger.executor`) and the
module source (``.dagger/``) both call these, so there is one implementation of the build.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import dagger

from pipeline.dagger.spec import DaggerBuildSpec


def context_directory(
    client: dagger.Client, spec: DaggerBuildSpec, dockerfile_text: str
) -> dagger.Directory:
    """The build context uploaded from the host (minus ``spec.excludes``) plus the Dockerfile.

    The rendered Dockerfile is written into the uploaded directory at ``spec.dockerfile`` so the
    build uses exactly the text we rendered, even if ``.dockerignore`` excludes the file.
    """
    source = client.host().directory(str(spec.context), exclude=list(spec.excludes))
    return source.with_new_file(spec.dockerfile, dockerfile_text)


def named_secrets(client: dagger.Client, plaintexts: Mapping[str, str]) -> dict[str, dagger.Secret]:
    """Secrets named by the id the Dockerfile mounts (``RUN --mount=type=secret,id=<id>``).

    Dagger matches Dockerfile secret ids against secret *names*, and only ``setSecret`` gives a
    secret a name (URI-created secrets are anonymous and rejected by ``dockerBuild``).
    """
    return {sid: client.set_secret(sid, value) for sid, value in plaintexts.items()}


def build_variants(
    context: dagger.Directory,
    spec: DaggerBuildSpec,
    secrets: Sequence[dagger.Secret] = (),
) -> list[dagger.Container]:
    """One ``dockerBuild`` per platform (or one for the engine's platform when none is given)."""
    build_args = [dagger.BuildArg(name=k, value=v) for k, v in spec.build_args.items()]
    platforms: Sequence[str | None] = spec.platforms or (None,)
    variants = []
    for platform in platforms:
        container = context.docker_build(
            dockerfile=spec.dockerfile,
            platform=dagger.Platform(platform) if platform else None,
            build_args=build_args or None,
            target=spec.target,
            secrets=list(secrets) or None,
        )
        for key, value in spec.labels.items():
            container = container.with_label(key, value)
        variants.append(container)
    return variants


async def publish(variants: Sequence[dagger.Container], address: str) -> str:
    """Push all variants as one (multi-platform) image; returns ``address@sha256:...``."""
    first, *rest = variants
    return await first.publish(address, platform_variants=rest or None)


def _media_types(docker: bool) -> dagger.ImageMediaTypes:
    return (
        dagger.ImageMediaTypes.DockerMediaTypes if docker else dagger.ImageMediaTypes.OCIMediaTypes
    )


def tarball(variants: Sequence[dagger.Container], *, docker: bool = False) -> dagger.File:
    """All variants as one OCI (or Docker media types) image tarball, kept in the engine."""
    first, *rest = variants
    return first.as_tarball(platform_variants=rest or None, media_types=_media_types(docker))


async def export(variants: Sequence[dagger.Container], path: Path, *, docker: bool = False) -> str:
    """Write all variants as one image tarball to ``path`` on the client host."""
    first, *rest = variants
    return await first.export(
        str(path), platform_variants=rest or None, media_types=_media_types(docker)
    )


async def sync_all(variants: Sequence[dagger.Container]) -> None:
    """Force every variant to build (for a build with no output)."""
    for variant in variants:
        await variant.sync()
