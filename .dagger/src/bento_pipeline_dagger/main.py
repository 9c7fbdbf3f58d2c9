"""Dagger functions over the bento-pipeline code (the same code as ``--backend dagger``).

    dagger call dockerfile --bento=examples/hello export --path=Dockerfile
    dagger call publish --bento=./bento --platforms=linux/amd64,linux/arm64 \
        --secrets=env://HF_TOKEN --address=ghcr.io/acme/hello:1
    dagger call export --bento=./bento --platforms=linux/amd64,linux/arm64 export --path=hello.tar

A function cannot return a multi-platform container (dagger/dagger#6675), so ``export`` and
``publish`` combine the platform variants themselves; ``build`` returns the first platform's
container for chaining (``terminal``, ``with-exec``, ``export-image``).
"""

import sys
from pathlib import Path
from typing import Annotated


def _repo_root() -> Path | None:
    """The checkout holding ``pipeline/`` and ``render/`` (dagger.json ``include`` loads them)."""
    here = Path(__file__).resolve()
    for base in (*here.parents, Path.cwd(), *Path.cwd().parents):
        if (base / "pipeline" / "dagger" / "graph.py").is_file() and (base / "render").is_dir():
            return base
    return None


_root = _repo_root()
if _root is not None and str(_root) not in sys.path:
    sys.path.insert(0, str(_root))

from dagger import Container, Directory, Doc, File, Secret, dag, function, object_type  # noqa: E402

from pipeline.dagger import functions, graph  # noqa: E402

# One alias per shared argument: `dagger call` sees the same name, type and doc in every
# function (the SDK reads them with get_type_hints(include_extras=True)).
BentoDir = Annotated[
    Directory,
    Doc("a bento directory (with bento.yaml) or a BentoML project (with bentofile.yaml)"),
]
Platforms = Annotated[
    list[str] | None,
    Doc("platforms to build, e.g. linux/amd64,linux/arm64 (default: engine's)"),
]
Secrets = Annotated[
    list[Secret] | None,
    Doc("build secrets (env://VAR, file://PATH, ...); Dockerfile id: VAR or the file name"),
]
SecretIds = Annotated[
    list[str] | None, Doc("Dockerfile secret ids for --secrets, one per secret, in order")
]
BuildArgs = Annotated[list[str] | None, Doc("build arguments as KEY=VALUE")]
Target = Annotated[str, Doc("Dockerfile stage to build (default: the last)")]
Labels = Annotated[list[str] | None, Doc("image labels as KEY=VALUE")]
CaCert = Annotated[
    File | None,
    Doc("PEM certificate of a TLS-intercepting proxy, trusted during the build only"),
]


async def _variants(
    bento: Directory,
    platforms: list[str] | None,
    secrets: list[Secret] | None,
    secret_ids: list[str] | None,
    build_args: list[str] | None,
    target: str,
    labels: list[str] | None,
    ca_cert: File | None,
) -> list[Container]:
    """One container per platform, through the same code as ``--backend dagger``."""
    return await functions.build_variants(
        dag,
        bento,
        secrets=secrets or (),
        secret_ids=secret_ids or (),
        ca_cert=ca_cert,
        platforms=platforms or None,
        build_args=build_args or None,
        target=target or None,
        labels=labels or None,
    )


@object_type
class BentoPipeline:
    """Render BentoML bentos into Dockerfiles and build, export or publish their images."""

    @function
    async def dockerfile(self, bento: BentoDir, ca_cert: CaCert = None) -> File:
        """The Dockerfile rendered for the bento."""
        text = await functions.dockerfile(bento, ca_cert=ca_cert)
        return dag.file("Dockerfile", text)

    @function
    async def build(
        self,
        bento: BentoDir,
        platforms: Platforms = None,
        secrets: Secrets = None,
        secret_ids: SecretIds = None,
        build_args: BuildArgs = None,
        target: Target = "",
        labels: Labels = None,
        ca_cert: CaCert = None,
    ) -> Container:
        """Build the bento's image; returns the first platform's container."""
        variants = await _variants(
            bento, platforms, secrets, secret_ids, build_args, target, labels, ca_cert
        )
        return variants[0]

    @function
    async def export(
        self,
        bento: BentoDir,
        platforms: Platforms = None,
        secrets: Secrets = None,
        secret_ids: SecretIds = None,
        build_args: BuildArgs = None,
        target: Target = "",
        labels: Labels = None,
        ca_cert: CaCert = None,
        docker: Annotated[bool, Doc("Docker media types (for docker load) instead of OCI")] = False,
    ) -> File:
        """All platforms as one image tarball (OCI layout; docker-loadable)."""
        variants = await _variants(
            bento, platforms, secrets, secret_ids, build_args, target, labels, ca_cert
        )
        return graph.tarball(variants, docker=docker)

    @function
    async def publish(
        self,
        address: Annotated[str, Doc("registry reference to push to, e.g. ghcr.io/acme/app:1")],
        bento: BentoDir,
        platforms: Platforms = None,
        secrets: Secrets = None,
        secret_ids: SecretIds = None,
        build_args: BuildArgs = None,
        target: Target = "",
        labels: Labels = None,
        ca_cert: CaCert = None,
    ) -> str:
        """Push all platforms as one image; returns the reference with its digest."""
        variants = await _variants(
            bento, platforms, secrets, secret_ids, build_args, target, labels, ca_cert
        )
        return await graph.publish(variants, address)
