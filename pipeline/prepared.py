"""A build made ready: the bento resolved (a project built into the store first), the backend
selected, the Dockerfile rendered (:func:`prepare` -> :class:`PreparedBuild`), and the live files
a build needs (:func:`build_request`: the context directory, the CA bundle and the build-stage
env secrets in private temporary files, all removed afterwards).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from attrs import evolve, frozen

from pipeline.backends.registry import Selection, select_backend
from pipeline.bento import resolve_bento
from pipeline.buildoptions import BuildOptions, default_tag, parse_options
from pipeline.cacert import ca_bundle_secret
from pipeline.config import Bento
from pipeline.context import build_env_secrets, temporary_context
from pipeline.errors import ConfigError, PipelineError
from pipeline.graph import StageGraph
from pipeline.labels import BENTO_TAG_LABEL as BENTO_TAG_LABEL
from pipeline.labels import image_labels as image_labels
from pipeline.labels import public_url as public_url
from pipeline.options import OPTIONS
from pipeline.paths import user_path
from pipeline.projectfiles import build_file
from pipeline.rendering import RenderOptions, render_dockerfile
from pipeline.request import (
    BuildRequest,
    SecretSpec,
)
from pipeline.requirements import bento_source_builds
from pipeline.store import get_bento, looks_like_path


@frozen
class PreparedBuild:
    """A resolved bento, the chosen backend and the rendered Dockerfile: ready to build."""

    bento: Bento
    selection: Selection
    dockerfile: str
    options: BuildOptions
    source: str = ""  # the bento reference as given (see BuildPlan.bento.source)

    @property
    def tags(self) -> tuple[str, ...]:
        return self.options.tags or (default_tag(self.bento),)


def prepare(
    bento: str | Path | Bento | None = None,
    backend: str | None = None,
    *,
    template: str | Path | None = None,
    graph: StageGraph | None = None,
    project_store: Path | None = None,
    **options: Any,
) -> PreparedBuild:
    """Validate options, resolve the bento and the backend, render the Dockerfile (no build).

    ``graph`` is the stage graph to render (default: :func:`pipeline.graph.default_graph`).
    ``bento_tag=`` (BentoML's name) may stand for ``bento``. A project is built into
    ``project_store`` (default: the store), e.g. a temporary one for a dry run. The options'
    labels get the image labels (:func:`image_labels`) under the user's own.
    """
    bento = _bento_argument(bento, options)
    parsed = parse_options(**options)
    rendered: list[tuple[Selection, str]] = []

    def render(candidate: Bento) -> None:
        selection = select_backend(backend)
        rendered.append((selection, _render(candidate, selection, parsed, template, graph)))

    # A project is rendered before its new bento enters the store: a failure stores nothing.
    if isinstance(bento, Bento):
        resolved, project = bento, None
    else:
        resolved = _resolve(bento, check=render, project_store=project_store)
        project = project_dir(bento)
        if project_store is not None:
            resolved = _stored_twin(resolved, project_store)
    if not rendered:
        render(resolved)
    selection, dockerfile = rendered[-1]
    own = {**resolved.labels, **parsed.labels}  # the bentofile's LABELs and --label win
    labels = {k: v for k, v in image_labels(resolved, project).items() if k not in own}
    parsed = evolve(parsed, labels={**labels, **parsed.labels})
    return PreparedBuild(resolved, selection, dockerfile, parsed, _source(bento))


def _stored_twin(bento: Bento, scratch: Path) -> Bento:
    """The store's own copy of ``bento`` (built into the scratch store ``scratch``) when the
    store holds that version already: its creation time is the one a real build labels."""
    if not bento.path.is_relative_to(scratch):
        return bento
    try:
        return get_bento(bento.tag)
    except PipelineError:
        return bento


def project_dir(ref: str | Path) -> Path | None:
    """``ref`` as a project directory (one with a build file), else None."""
    text = os.fspath(ref)
    if not looks_like_path(text) and not Path(text).is_dir():
        return None
    try:
        path = user_path(text, field="bento")
    except ConfigError:
        return None
    return path if path.is_dir() and build_file(path) is not None else None


def _source(ref: str | Path | Bento) -> str:
    """The bento reference as given (a path absolute), for the plan."""
    if isinstance(ref, Bento):
        return str(ref.path)
    text = os.fspath(ref)
    if Path(text).exists():
        return str(Path(text).absolute())
    return text


def _bento_argument(
    bento: str | Path | Bento | None, options: dict[str, Any]
) -> str | Path | Bento:
    """``bento``, or BentoML's ``bento_tag=`` keyword (taken out of ``options``)."""
    if "bento_tag" in options:
        if bento is not None:
            raise ConfigError(
                "the bento is given twice (as the first argument and as bento_tag=); give one",
                field="bento_tag",
            )
        bento = options.pop("bento_tag")
    if bento is None or bento == "":
        raise ConfigError(
            "no bento given: pass a bento directory, a project directory or a store tag "
            "(name[:version|latest])",
            field="bento",
        )
    return bento


def _resolve(
    ref: str | Path, *, check: Callable[[Bento], object], project_store: Path | None = None
) -> Bento:
    return resolve_bento(str(ref), check=check, project_store=project_store)


def _render(
    bento: Bento,
    selection: Selection,
    options: BuildOptions,
    template: str | Path | None,
    graph: StageGraph | None,
) -> str:
    return str(
        render_dockerfile(bento, render_options_for(bento, selection, options, template), graph)
    )


def render_options_for(
    bento: Bento, selection: Selection, options: BuildOptions, template: str | Path | None
) -> RenderOptions:
    """How ``bento`` renders for this build: the engine's syntax and limits, the options'
    CA and features, and which locked requirements need compilers here (uv may be asked)."""
    return RenderOptions(
        template=template,
        buildkit=selection.buildkit,
        ca_cert=options.ca_cert is not None,
        features=cast(Any, options.features),  # attrs' `tuple` converter confuses mypy
        max_locked_cache_mounts=selection.executor.max_locked_cache_mounts,
        source_builds=bento_source_builds(bento),
    )


@contextmanager
def build_request(prepared: PreparedBuild) -> Iterator[BuildRequest]:
    """A temp context (and CA bundle) for the build; both are removed on exit, always."""
    options = prepared.options
    given = tuple(s.id for s in options.secrets)
    with (
        _maybe_ca_secret(options.ca_cert) as ca_secret,
        # the bento's stage-build envs (a --secret of the same id given by the user wins)
        build_env_secrets(prepared.bento, skip=given) as env_secrets,
        temporary_context(prepared.bento, prepared.dockerfile) as context,
    ):
        # typed Any: attrs' plain `tuple` converters on BuildRequest confuse mypy
        secrets: Any = (*options.secrets, *env_secrets, *([ca_secret] if ca_secret else []))
        # every option the request carries (pipeline.options), as given; tags and secrets
        # as resolved here
        given_options: dict[str, Any] = {
            o.name: getattr(options, o.name)
            for o in OPTIONS
            if o.request and o.name not in ("tags", "secrets")
        }
        yield BuildRequest(
            context=Path(context), tags=prepared.tags, secrets=secrets, **given_options
        )


@contextmanager
def _maybe_ca_secret(cert: Path | None) -> Iterator[SecretSpec | None]:
    if cert is None:
        yield None
        return
    with ca_bundle_secret(cert) as secret:
        yield secret
