"""From a bento to its Dockerfile text (pure).

:func:`render_dockerfile`: the same bento (its config and files), options and graph give
byte-identical text. It picks the base image from the distro table, builds the template
context, lints and renders the user's ``dockerfile_template`` over ``bento_base_template``.
:func:`render_with_sources` is the same render with each line's block and template
(:mod:`pipeline.origins` turns them into instruction origins).

With ``RenderOptions(ca_cert=True)`` every ``RUN`` that downloads packages mounts the BuildKit
secret :data:`CA_CERT_SECRET_ID` and points pip, requests, OpenSSL, curl, apt and yum at it for
that command only; the file never lands in a layer, ``ENV`` or the context.

``envs`` entries of stage ``build`` work the same way: each install step (system packages,
commands, the venv install, post_commands, setup_script) mounts the secret ``NAME`` and exports
``NAME`` for that command only; :func:`pipeline.context.build_env_secrets` supplies the values
to the engine and the context's copies of the bento's metadata carry no value.
"""

from __future__ import annotations

import shlex
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from attrs import evolve, field, frozen

from pipeline.config import Bento
from pipeline.errors import ConfigError, PipelineWarning, TemplateError, allowed, did_you_mean
from pipeline.graph import StageGraph, default_graph
from pipeline.paths import cache_dir, optional_path
from pipeline.pins import pinned_bentoml_version
from pipeline.request import CA_CERT_SECRET_ID
from render.distros import DISTROS, CudaPython, get_distro
from render.environment import (
    BASE_TEMPLATE_NAME,
    CompiledTemplateCache,
    LineSource,
    base_template_sources,
    check_template_path,
    make_environment,
    read_template,
    render_template,
    render_traced,
)
from render.lint import lint_template
from render.recipes import (
    UV_VERSION,
    Recipe,
    bentoml_install_line,
    cuda_python_setup,
    python_headers_package,
    recipe_for,
)

CA_CERT_PATH = f"/run/secrets/{CA_CERT_SECRET_ID}"
VENV = "/app/.venv"
ENTRYPOINT_PATH = Path("env/docker/entrypoint.sh")
SETUP_SCRIPT_PATH = Path("env/docker/setup_script")
REQUIREMENTS_PATH = Path("env/python/requirements.txt")
WHEELS_DIR = Path("env/python/wheels")

_CA_ENV = ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "CONDA_SSL_VERIFY")
_APT_CACHES = ("/var/cache/apt", "/var/lib/apt")
_PIP_CACHE = "/root/.cache/pip"
_UV_CACHE = "/root/.cache/uv"


def _names(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@frozen
class RenderOptions:
    """How to render: an explicit template (overrides the bento's ``dockerfile_template``),
    whether the builder speaks BuildKit (cache/secret mounts), whether downloads trust the CA
    bundle passed as secret ``ca_cert``, and whether template lint findings are errors."""

    template: Path | None = field(default=None, converter=optional_path)
    buildkit: bool = True
    ca_cert: bool = False
    strict: bool = False
    # BentoML's `--enable-features`: extras installed as `bentoml[f1,f2]` with the bento's
    # bentoml version. (BentoML's `--run-as-root` is not a render option: it runs the *engine*
    # with sudo, see BuildRequest.run_as_root.)
    features: tuple[str, ...] = field(default=(), converter=tuple)
    # the engine's limit of `sharing=locked` cache mounts per RUN (BackendSpec): with 1, the apt
    # step caches only /var/cache/apt (the package lists are fetched again)
    max_locked_cache_mounts: int | None = None
    # the bento's locked requirements known to have no wheel here
    # (:func:`pipeline.requirements.source_builds`, which the shell asks): the build stage then
    # installs the compilers up front, as a layer a dependency change reuses
    source_builds: tuple[str, ...] = field(default=(), converter=_names)


class _RunFlags:
    """``run_flags(...)`` in templates: the text between ``RUN`` and a command. Every ``download``
    step (an install step) also mounts the bento's build-stage envs as secrets."""

    def __init__(self, options: RenderOptions, build_secrets: tuple[str, ...] = ()) -> None:
        self.options = options
        self.build_secrets = build_secrets
        self.dropped: dict[str, None] = {}

    def __call__(self, *purposes: str, manager: str | None = None) -> str:
        parts: list[str] = []
        buildkit = self.options.buildkit
        if "download" in purposes and manager == "apt":
            if buildkit:
                limit = self.options.max_locked_cache_mounts
                caches = _APT_CACHES if limit is None else _APT_CACHES[:limit]
                parts.extend(f"--mount=type=cache,target={c},sharing=locked" for c in caches)
            else:
                self.dropped["RUN --mount=type=cache for the apt cache"] = None
        if "pip" in purposes:
            if buildkit:
                parts.append(f"--mount=type=cache,target={_PIP_CACHE}")
            else:
                self.dropped["RUN --mount=type=cache for the pip cache"] = None
        if "uv" in purposes:
            if buildkit:
                parts.append(f"--mount=type=cache,target={_UV_CACHE}")
            else:
                self.dropped["RUN --mount=type=cache for the uv cache"] = None
        if "offline" in purposes:
            if buildkit:
                parts.append("--network=none")
            else:
                self.dropped["RUN --network=none on the offline install"] = None
        exports: list[str] = []
        if "download" in purposes and self.options.ca_cert:
            parts.append(f"--mount=type=secret,id={CA_CERT_SECRET_ID}")
            exports.extend(f"{name}={CA_CERT_PATH}" for name in _CA_ENV)
        if "download" in purposes:
            # the value is read from the mount inside the command: never an ARG, ENV or layer
            parts.extend(f"--mount=type=secret,id={name}" for name in self.build_secrets)
            exports.extend(f'{name}="$(cat /run/secrets/{name})"' for name in self.build_secrets)
        if exports:
            parts.append(f"export {' '.join(exports)} &&")
        if not parts:
            return ""
        return " " + " \\\n    ".join(parts) + " \\\n   "


def requirement_lines(bento: Bento) -> list[str]:
    """The bento's Python requirements: ``env/python/requirements.txt`` when the bento has one
    (BentoML writes it, locked), else ``python_requirements`` + ``requirements_txt`` +
    ``packages`` from its config."""
    locked = bento.path / REQUIREMENTS_PATH
    if locked.is_file():
        return locked.read_text(encoding="utf-8").splitlines()
    lines: list[str] = []
    if bento.python.requirements_text:
        lines.extend(bento.python.requirements_text.splitlines())
    if bento.python.requirements_txt:
        source = bento.path / bento.python.requirements_txt
        if not source.is_file():
            raise ConfigError(
                "requirements file not found in the bento",
                file=bento.bento_yaml,
                field="python.requirements_txt",
            )
        lines.extend(source.read_text(encoding="utf-8").splitlines())
    lines.extend(bento.python.packages)
    return lines


#: `bentoml containerize --enable-features` values: bentoml's extras
BENTOML_FEATURES: tuple[str, ...] = (
    "aws",
    "grpc",
    "grpc-channelz",
    "grpc-reflection",
    "io",
    "io-file",
    "io-image",
    "io-json",
    "io-pandas",
    "monitor-otlp",
    "tracing",
    "tracing-jaeger",
    "tracing-otlp",
    "tracing-zipkin",
    "triton",
    "all",
)


def feature_requirements(
    bento: Bento, features: tuple[str, ...], lines: list[str]
) -> tuple[str, ...]:
    """``bentoml[f1,f2]==V`` for ``--enable-features``: the extras of the bentoml the bento's
    requirement ``lines`` already pin (so the features never change its bentoml version)."""
    if not features:
        return ()
    unknown = [f for f in features if f not in BENTOML_FEATURES]
    if unknown:
        raise ConfigError(
            f"unknown feature {unknown[0]!r}{did_you_mean(unknown[0], BENTOML_FEATURES)}",
            field="--enable-features",
            hint=f"allowed: {allowed(BENTOML_FEATURES)}",
        )
    version = pinned_bentoml_version(lines) or bento.bentoml_version
    if not version:
        raise ConfigError(
            "--enable-features adds bentoml extras, but this bento does not pin bentoml",
            file=bento.bento_yaml,
            field="--enable-features",
            hint="add bentoml to python.packages (or let `bento build` pin it for a service "
            "that imports bentoml)",
        )
    return (f"bentoml[{','.join(dict.fromkeys(features))}]=={version}",)


def _has_requirements(lines: list[str]) -> bool:
    return any(line.strip() and not line.lstrip().startswith("#") for line in lines)


def _pip_args(bento: Bento) -> list[tuple[str, str]]:
    py = bento.python
    args: list[tuple[str, str]] = []
    if py.index_url:
        args += [("--index-url", "python.index_url"), (py.index_url, "python.index_url")]
    if py.no_index:
        args.append(("--no-index", "python.no_index"))
    for i, host in enumerate(py.trusted_host):
        args += [("--trusted-host", "python.trusted_host"), (host, f"python.trusted_host[{i}]")]
    for i, link in enumerate(py.find_links):
        args += [("--find-links", "python.find_links"), (link, f"python.find_links[{i}]")]
    for i, url in enumerate(py.extra_index_url):
        args += [
            ("--extra-index-url", "python.extra_index_url"),
            (url, f"python.extra_index_url[{i}]"),
        ]
    if py.pip_args:
        try:
            extra = shlex.split(py.pip_args)
        except ValueError as exc:
            raise ConfigError(
                f"cannot split {py.pip_args!r} into arguments: {exc}", field="python.pip_args"
            ) from None
        args += [(arg, "python.pip_args") for arg in extra]
    return args


def _wheels(bento: Bento) -> list[str]:
    folder = bento.path / WHEELS_DIR
    if not folder.is_dir():
        return []
    return [f"./{WHEELS_DIR.as_posix()}/{p.name}" for p in sorted(folder.glob("*.whl"))]


def _template_path(bento: Bento, options: RenderOptions) -> Path | None:
    if options.template is not None:
        return check_template_path(options.template.resolve(), field="--template")
    name = bento.docker.dockerfile_template
    if not name:
        return None
    path = Path(name)
    if not path.is_absolute():
        path = bento.path / path
    return check_template_path(path.resolve())


def _base(bento: Bento) -> dict[str, Any]:
    """Base image, package manager, recipe and python for the bento's ``docker:`` options."""
    docker = bento.docker.with_defaults()
    if docker.base_image:
        return {
            "base_image": docker.base_image,
            "distro": None,
            "package_manager": None,
            "recipe": recipe_for(None),
            "python_setup": None,
            "python_setup_manager": None,
        }
    distro_name = docker.distro or "debian"
    spec = get_distro(distro_name)
    if spec is None:
        raise ConfigError(
            f"unknown distro {distro_name!r}; allowed: {allowed(DISTROS)}",
            file=bento.bento_yaml,
            field="docker.distro",
        )
    python_version = docker.python_version or ""
    recipe_name: str = spec.name
    cuda = docker.cuda_version
    if cuda is not None:
        full = spec.resolve_cuda(cuda) or cuda
        if full not in spec.cuda_images:
            raise ConfigError(
                f"CUDA {cuda!r} has no image for distro {spec.name!r}",
                file=bento.bento_yaml,
                field="docker.cuda_version",
            )
        image = spec.base_image(python_version, full)
    elif not bento.conda.is_empty and spec.conda_image and spec.name != "miniconda":
        image = spec.conda_image
        recipe_name = "miniconda"
    else:
        image = spec.base_image(python_version)
    recipe = recipe_for(recipe_name)
    python_setup = recipe.python_setup
    if python_setup is not None:
        python_setup = python_setup.format(python_version=python_version)
    if cuda is not None:
        python_setup = _cuda_python_setup(
            bento, spec.package_manager, spec.cuda_python(full), python_version
        )
        recipe = evolve(recipe, python=f"python{python_version}")
    return {
        "base_image": image,
        "distro": spec.name,
        "package_manager": spec.package_manager,
        "recipe": recipe,
        "python_setup": python_setup,
        "python_setup_manager": spec.package_manager if cuda is not None else None,
    }


def _cuda_python_setup(
    bento: Bento, manager: str, cuda_python: CudaPython, python_version: str
) -> str:
    """The requested Python on a CUDA image, or an error naming the versions it can have."""
    if python_version not in cuda_python.versions:
        raise ConfigError(
            f"Python {python_version} cannot be installed on the CUDA image "
            f"({cuda_python.os}); it can have {allowed(cuda_python.versions)}",
            file=bento.bento_yaml,
            field="docker.python_version",
        )
    return cuda_python_setup(manager, python_version == cuda_python.native, python_version)


def _commands_and_toolchain(
    bento: Bento, base: dict[str, Any], recipe: Recipe
) -> tuple[tuple[str, ...], str | None, tuple[str, ...]]:
    """The bento's commands without BentoML's injected toolchain line (see
    :class:`render.recipes.BentomlInstallLine`), the package manager and the build packages
    the build stage may need."""
    commands: list[str] = []
    manager, build_packages = base["package_manager"], recipe.build_packages
    for index, command in enumerate(bento.docker.commands):
        line = bentoml_install_line(command)
        if line is None:
            commands.append(command)
            continue
        manager, build_packages = line.manager, line.build_packages
        later = bento.docker.commands[index + 1 :]
        if line.runtime and any(line.runtime.split()[0] in c for c in later):
            commands.append(line.runtime)
    return tuple(commands), manager, tuple(build_packages)


def build_context(bento: Bento, options: RenderOptions, graph: StageGraph) -> dict[str, Any]:
    """Everything the stage templates see (besides the ``bento__*`` variables)."""
    base = _base(bento)
    recipe = base["recipe"]
    ca = options.ca_cert
    apt_ca = f" -o Acquire::https::CAInfo={CA_CERT_PATH}" if ca else ""
    python_setup = base["python_setup"]
    yum_ca = f" --setopt=sslcacert={CA_CERT_PATH}" if ca else ""
    if python_setup is not None:
        python_setup = python_setup.replace("{apt_ca}", apt_ca).replace("{yum_ca}", yum_ca)
    venv_copied = any(
        copy.dest == VENV and stage.name == "components"
        for stage in graph.stages
        for copy in stage.copies
    )
    docker = bento.docker
    commands, package_manager, build_packages = _commands_and_toolchain(bento, base, recipe)
    lines = requirement_lines(bento)
    if any("git+" in line for line in lines) and "git" not in build_packages:
        build_packages = (*build_packages, "git")
    return {
        "bento": bento,
        "graph": graph,
        "stages": {stage.name: stage for stage in graph.stages},
        "build_stage_of": lambda name: graph.get(name).opens,
        "base_image": base["base_image"],
        "distro": base["distro"],
        "package_manager": base["package_manager"],
        "python_setup_manager": base["python_setup_manager"],
        "recipe": evolve(recipe, python_setup=python_setup),
        "python": recipe.python,
        "venv": VENV,
        "system_packages": tuple(docker.system_packages) if base["package_manager"] else (),
        "env": dict(docker.env),
        "labels": dict(bento.labels),
        "setup_script": bool(docker.setup_script),
        "commands": commands,
        "post_commands": tuple(docker.post_commands),
        # spec-2 bentos call their setup script from env/docker in post_commands
        "env_docker": (bento.path / "env" / "docker").is_dir(),
        "conda_channels": tuple(bento.conda.channels),
        "conda_packages": tuple(bento.conda.dependencies),
        "requirements": _has_requirements(lines) or bool(_wheels(bento)) or bool(options.features),
        "feature_requirements": feature_requirements(bento, options.features, lines),
        # uv installs the requirements (pip itself only bootstraps it), except where uv cannot
        # serve: python.pip_args are pip's own options
        "installer": "pip" if bento.python.pip_args else "uv",
        "uv_version": UV_VERSION,
        "wheels": tuple(_wheels(bento)),
        "pip_args": tuple(_pip_args(bento)),
        "venv_copied": venv_copied,
        # compilers the build stage installs only when a requirement must be built from source
        "build_packages": build_packages,
        # ... which `bento build` found for some locked requirements: installed up front, a layer
        # that a dependency change reuses (otherwise only after a wheels-only attempt fails)
        "source_builds": bool(build_packages) and bool(options.source_builds),
        "build_package_manager": package_manager,
        "python_headers": python_headers_package(package_manager or "", recipe.python),
        "build_include": tuple(docker.build_include),
        "buildkit": options.buildkit,
        "ca_cert": ca,
        "apt_ca": apt_ca,
        "yum_ca": yum_ca,
    }


def render_dockerfile(
    bento: Bento, options: RenderOptions | None = None, graph: StageGraph | None = None
) -> str:
    """The Dockerfile for ``bento``: the graph's blocks in topological order, overridden by the
    user's ``dockerfile_template`` (from ``options.template`` or the bento's config)."""
    text, _sources = _render(bento, options, graph, trace=False)
    return text


def render_with_sources(
    bento: Bento, options: RenderOptions | None = None, graph: StageGraph | None = None
) -> tuple[str, list[LineSource]]:
    """:func:`render_dockerfile`'s text rendered with each block's output framed, and each
    line's :class:`~render.environment.LineSource` (block, template). The text equals
    :func:`render_dockerfile`'s unless a template reshapes a block's output as a string.
    Warnings are :func:`render_dockerfile`'s to give."""
    return _render(bento, options, graph, trace=True)


def _render(
    bento: Bento, options: RenderOptions | None, graph: StageGraph | None, *, trace: bool
) -> tuple[str, list[LineSource]]:
    options = options or RenderOptions()
    graph = graph if graph is not None else default_graph()
    if options.ca_cert and not options.buildkit:
        raise ConfigError(
            "ca_cert needs BuildKit: the CA bundle is passed as a build secret "
            f"(RUN --mount=type=secret,id={CA_CERT_SECRET_ID}) so it never lands in a layer",
            field="ca_cert",
            hint="build with a BuildKit-capable backend, or drop ca_cert",
        )
    build_secrets = tuple(e.name for e in bento.build_envs)
    if build_secrets and not options.buildkit:
        index = next(i for i, e in enumerate(bento.envs) if e.stage == "build")
        raise ConfigError(
            f"{bento.envs[index].name} has stage 'build': it is passed as a build secret "
            f"(RUN --mount=type=secret,id={bento.envs[index].name}), which needs BuildKit",
            file=bento.bento_yaml,
            field=f"envs[{index}].stage",
            hint="build with a BuildKit-capable backend (docker with BuildKit, buildx, podman, "
            "buildah, buildctl), or give the variable stage 'all' to bake it into the image",
        )
    template = _template_path(bento, options)
    sources = base_template_sources(graph)
    env = make_environment(sources, bytecode_cache=CompiledTemplateCache(cache_dir()))
    context = build_context(bento, options, graph)
    run_flags = _RunFlags(options, build_secrets)
    context["run_flags"] = run_flags
    name = BASE_TEMPLATE_NAME
    if template is not None:
        source = read_template(template)
        lint_template(
            source, template, graph=graph, buildkit=options.buildkit, strict=options.strict, env=env
        )
        context["bento_base_template"] = name
        name = str(template)
    traced: list[LineSource] = []
    try:
        if trace:
            text, traced = render_traced(env, name, context, file=template)
        else:
            text = render_template(env, name, context, file=template)
    except TemplateError as exc:
        if exc.file is None and template is not None:
            exc.file = str(template)
        raise
    except ConfigError as exc:
        if exc.file is None:
            exc.file = str(bento.bento_yaml)
        raise
    if run_flags.dropped and not trace:
        warnings.warn(
            "BuildKit is off: dropped "
            + "; ".join(run_flags.dropped)
            + " (packages are downloaded again on every build)",
            PipelineWarning,
            stacklevel=3,
        )
    return text, traced


def entrypoint_script(bento_path: str = "/home/bentoml/bento") -> str:
    env = make_environment(bytecode_cache=CompiledTemplateCache(cache_dir()))
    return render_template(env, "entrypoint.sh.j2", {"bento_path": bento_path}, file=None)


__all__ = [
    "CA_CERT_SECRET_ID",
    "ENTRYPOINT_PATH",
    "REQUIREMENTS_PATH",
    "SETUP_SCRIPT_PATH",
    "RenderOptions",
    "build_context",
    "entrypoint_script",
    "feature_requirements",
    "render_dockerfile",
    "render_with_sources",
    "requirement_lines",
]
