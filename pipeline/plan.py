"""From a bento to a Dockerfile and a build context.

- :func:`render_dockerfile` is pure: the same bento (its config and files), options and graph
  give byte-identical text. It picks the base image from the distro table, builds the template
  context, lints and renders the user's ``dockerfile_template`` over ``bento_base_template``.
- :func:`write_context` / :func:`temporary_context` are the effectful half: they assemble the
  directory a builder gets (bento files + ``Dockerfile`` + ``env/docker/entrypoint.sh``).

With ``RenderOptions(ca_cert=True)`` every ``RUN`` that downloads packages mounts the BuildKit
secret :data:`CA_CERT_SECRET_ID` and points pip, requests, OpenSSL, curl, apt and yum at it for
that command only; the file never lands in a layer, ``ENV`` or the context.

``envs`` entries of stage ``build`` work the same way: each install step (system packages,
commands, the venv install, post_commands, setup_script) mounts the secret ``NAME`` and exports
``NAME`` for that command only; :func:`build_env_secrets` supplies the values to the engine and
the context's copies of the bento's metadata carry no value.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from attrs import evolve, field, frozen

from pipeline._fs import make_dirs, remove_created
from pipeline.config import Bento
from pipeline.diskcache import cache_dir
from pipeline.dockerfile import Instruction, Origin, parse_dockerfile
from pipeline.errors import ConfigError, PipelineWarning, TemplateError, allowed, did_you_mean
from pipeline.graph import StageGraph, default_graph
from pipeline.paths import kind_of, user_path
from pipeline.request import CA_CERT_SECRET_ID, SecretSpec
from pipeline.requirements import pinned_bentoml_version, source_builds
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
    template_line,
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


def _optional_path(value: str | os.PathLike[str] | None) -> Path | None:
    return None if value is None else Path(value)


@frozen
class RenderOptions:
    """How to render: an explicit template (overrides the bento's ``dockerfile_template``),
    whether the builder speaks BuildKit (cache/secret mounts), whether downloads trust the CA
    bundle passed as secret ``ca_cert``, and whether template lint findings are errors."""

    template: Path | None = field(default=None, converter=_optional_path)
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
        "source_builds": bool(build_packages)
        and bool(source_builds(bento.path, python_version=bento.docker.python_version)),
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


# -- where each Dockerfile instruction comes from (pure; the parser is pipeline.dockerfile) --------

USER_TEMPLATE_FIELD = "docker.dockerfile_template"

_PYTHON_FIELD = "python.packages / python.requirements_txt"
_INSTALLERS = re.compile(r"\b(apt-get|apk|microdnf|yum|dnf) ")


def _field(bento: Bento, stage: str, text: str) -> str | None:
    """The bentofile field behind an instruction that a built-in ``stage`` rendered."""
    flat = " ".join(text.replace("\\\n", " ").split())
    keyword = flat.split(None, 1)[0].upper()
    docker = bento.docker
    if keyword == "FROM":
        if stage != "base":  # `FROM base-container AS ...`: a stage of ours, no field behind it
            return None
        return "docker.base_image / docker.distro / docker.python_version / docker.cuda_version"
    if keyword == "ENV" and stage in ("envars", "buildstage"):
        return "docker.env" if any(f" {key}=" in f" {flat}" for key in docker.env) else None
    if keyword == "LABEL":
        return "labels"
    if keyword != "RUN":
        return _PYTHON_FIELD if "./env/python" in flat else None
    for name, commands in (("commands", docker.commands), ("post_commands", docker.post_commands)):
        for i, command in enumerate(commands):
            if " ".join(command.split()) in flat:
                return f"docker.{name}[{i}]"
    if "setup_script" in flat:
        return "docker.setup_script"
    if "conda install" in flat:
        return "conda.dependencies / conda.channels"
    if re.search(r"\bpip (install|wheel)\b", flat):
        return _PYTHON_FIELD
    if _INSTALLERS.search(flat):
        words = set(flat.split())
        if any(package in words for package in docker.system_packages):
            return "docker.system_packages"
        return "docker.distro / docker.python_version (the distro's Python setup)"
    return None


def instruction_origins(
    bento: Bento, options: RenderOptions | None = None, graph: StageGraph | None = None
) -> list[Instruction]:
    """The instructions of :func:`render_dockerfile` (same arguments, same text), each with its
    :class:`Origin`: the block that rendered it, from the user's template (with the template
    line) or from a built-in stage (with the bentofile field behind it).

    Lines come out of a render where each block's output is framed by markers that are stripped
    afterwards; if a template reshapes a block's output as a string so that the framed text
    differs from :func:`render_dockerfile`'s, the instructions come without origins."""
    graph = graph if graph is not None else default_graph()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain, _none = _render(bento, options, graph, trace=False)
        traced, sources = _render(bento, options, graph, trace=True)
    instructions = parse_dockerfile(plain)
    if traced != plain:
        return instructions
    stage_of_block = {stage.block: stage.name for stage in graph.order()}
    explicit = options is not None and options.template is not None
    template_field = "--template" if explicit else USER_TEMPLATE_FIELD
    user_sources: dict[str, str] = {}
    taken: dict[tuple[str, str | None], set[int]] = {}
    result: list[Instruction] = []
    for instruction in instructions:
        source = sources[instruction.line - 1]
        stage = stage_of_block.get(source.block) if source.block else None
        if source.template is not None and source.template != BASE_TEMPLATE_NAME:
            path = source.template
            if path not in user_sources:
                user_sources[path] = Path(path).read_text(encoding="utf-8")
            line = template_line(
                user_sources[path],
                source.block,
                instruction.text,
                taken.setdefault((path, source.block), set()),
            )
            where = f"template {path}:{line}" if line else f"template {path}"
            origin = Origin(source.block, stage, where, template_field)
        elif stage is not None:
            kind = "built-in stage" if graph.get(stage).template else "graph stage"
            origin = Origin(
                source.block, stage, f"{kind} {stage}", _field(bento, stage, instruction.text)
            )
        else:
            origin = Origin(source.block, None, "the base template")
        result.append(evolve(instruction, origin=origin))
    return result


# -- the instruction an engine's step header names ------------------------------------------------

# BuildKit (docker, buildx, buildctl): "[stage 3/4] RUN ..." (no stage name in a one-stage file),
# optionally behind the "#12 " of plain progress
_BUILDKIT_HEADER = re.compile(r"^(?:#\d+ )?\[(?:(?P<stage>[^\]\s]+) )?(?P<n>\d+)/(?P<m>\d+)\] ")
# classic docker builder "Step 5/9 : RUN ..." (counts every instruction of the file) and
# buildah/podman "STEP 5/9: RUN ..." (every instruction of one build stage; "[1/2] " in front
# when there are several)
_NUMBERED_HEADER = re.compile(r"^(?:\[\d+/\d+\] )?(?:STEP|Step) (?P<n>\d+)/(?P<m>\d+) ?: ?")
_SHELL = re.compile(r"^(?:/bin/)?(?:ba)?sh -c ")
_FLAG = re.compile(r"^--[a-z-]+=\S*\s*")


def _squash(text: str) -> str:
    return " ".join(text.replace("\\\n", " ").split())


def _comparable(text: str) -> set[str]:
    """Ways the engines show an instruction: as written (continuations joined), without its
    ``--flag=`` options, just the command (Dagger and some errors show ``sh -c COMMAND``), and a
    ``FROM`` by its image with ``docker.io/library/`` and ``AS name`` dropped."""
    flat = _squash(text)
    keyword, _, rest = flat.partition(" ")
    forms = {flat}
    if keyword.upper() == "FROM":
        words = [w for w in rest.split() if not w.startswith("--")]
        image = re.sub(r"^docker\.io/(library/)?", "", words[0]) if words else ""
        return {f"FROM {image}"}
    while _FLAG.match(rest):
        rest = _FLAG.sub("", rest, count=1)
    forms.add(f"{keyword} {rest}".strip())
    if keyword.upper() == "RUN":
        forms.add(rest)
    return forms


def _step_forms(step: str) -> set[str]:
    flat = _squash(step)
    forms = _comparable(flat)
    command = _SHELL.sub("", flat)
    if command != flat:
        forms.add(command)
    return forms


def find_step(step: str, instructions: list[Instruction]) -> Instruction | None:
    """The instruction an engine names as ``step`` (its failing step header): by text among
    ``instructions``, with the step number telling apart instructions of the same text, or by
    number alone when the text is cut short. ``None`` when nothing fits."""
    text = step.strip()
    numbered: list[Instruction] = []
    if match := _BUILDKIT_HEADER.match(text):
        n, m, stage = int(match["n"]), int(match["m"]), match["stage"]
        totals: dict[str | None, int] = {}
        for i in instructions:
            totals[i.build_stage] = max(totals.get(i.build_stage, 0), i.step)
        numbered = [
            i
            for i in instructions
            if i.step == n
            and totals[i.build_stage] == m
            and (i.build_stage == stage if stage else len(totals.keys() - {None}) == 1)
        ]
        text = text[match.end() :]
    elif match := _NUMBERED_HEADER.match(text):
        n, m = int(match["n"]), int(match["m"])
        per_stage: dict[str | None, int] = {}
        for i in instructions:
            per_stage[i.build_stage] = max(per_stage.get(i.build_stage, 0), i.index)
        numbered = [i for i in instructions if i.number == n and len(instructions) == m]
        numbered += [
            i
            for i in instructions
            if i.index == n and i.build_stage is not None and per_stage[i.build_stage] == m
        ]
        text = text[match.end() :]
    wanted = _step_forms(text)
    same = [i for i in instructions if wanted & _comparable(i.text)]
    if same:
        both = [i for i in numbered if i in same]
        return both[0] if both else same[0]
    # cut short (engines truncate long steps in some modes): the numbered one if it starts so
    prefix = _squash(text).rstrip(". ")
    for candidate in numbered:
        if prefix and any(form.startswith(prefix) for form in _comparable(candidate.text)):
            return candidate
    return None


def entrypoint_script(bento_path: str = "/home/bentoml/bento") -> str:
    env = make_environment(bytecode_cache=CompiledTemplateCache(cache_dir()))
    return render_template(env, "entrypoint.sh.j2", {"bento_path": bento_path}, file=None)


# -- the build context (effectful) ---------------------------------------------------------------


def _copy_tree(
    source: Path, dest: Path, root: Path, parents: frozenset[Path] = frozenset()
) -> None:
    """Copy ``source`` into ``dest``, following symlinks that stay inside ``root`` (as files)
    and refusing any that leave it or loop: the context gets nothing from outside the bento."""
    here = source.resolve()
    if here in parents:
        raise ConfigError("symlink loop inside the bento; refusing to copy it", file=source)
    parents = parents | {here}
    dest.mkdir(parents=True, exist_ok=True)
    for entry in sorted(source.iterdir()):
        target = entry
        if entry.is_symlink():
            target = entry.resolve()
            if not target.is_relative_to(root):
                raise ConfigError(
                    f"symlink points outside the bento ({target}); refusing to copy it",
                    file=entry,
                )
        if target.is_dir():
            _copy_tree(target, dest / entry.name, root, parents)
        elif target.is_file():
            shutil.copy2(target, dest / entry.name)


def _copy_bento(bento: Bento, dest: Path) -> None:
    root = bento.path.resolve()
    _copy_tree(root, dest, root)


# -- build-stage envs: secrets for the build, no value in the context -----------------------------


@contextmanager
def build_env_secrets(
    bento: Bento, *, environ: dict[str, str] | None = None, skip: tuple[str, ...] = ()
) -> Iterator[tuple[SecretSpec, ...]]:
    """The build secrets for the bento's ``stage: build`` envs (except the ids in ``skip``,
    which the caller passes itself).

    As BentoML: the builder's environment variable ``NAME`` when it is set, else the entry's
    ``value``. A value is written to a 0600 file in a private temporary directory that is
    removed on exit; one from the environment is passed as ``env=NAME``. Neither is an error
    naming ``envs[i].value``.
    """
    env = os.environ if environ is None else environ
    private: Path | None = None
    secrets: list[SecretSpec] = []
    try:
        for index, item in enumerate(bento.envs):
            if item.stage != "build" or item.name in skip:
                continue
            if item.name in env:
                secrets.append(SecretSpec(id=item.name, env=item.name))
                continue
            if not item.value:
                raise ConfigError(
                    f"{item.name} has stage 'build' but no value, and the environment variable "
                    f"{item.name} is not set",
                    file=bento.bento_yaml,
                    field=f"envs[{index}].value",
                    hint=f"export {item.name}=... before building (it is passed as a build "
                    "secret, never stored in the image), or give the entry a value",
                )
            if private is None:
                private = Path(tempfile.mkdtemp(prefix="pipeline-envs-"))
            file = private / item.name
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(item.value)
            secrets.append(SecretSpec(id=item.name, src=file))
        yield tuple(secrets)
    finally:
        if private is not None:
            shutil.rmtree(private, ignore_errors=True)


def _scrub_build_values(bento: Bento, dest: Path) -> None:
    """Drop build-stage values from the context's copies of the bento's metadata.

    ``bento.yaml`` (and the project's ``bentofile.yaml`` / ``pyproject.toml`` that ``src/``
    carries when they were included) are copied into the image by ``COPY . ./``; the values of
    build-stage envs must not be (BentoML's images carry them)."""
    values = {e.value for e in bento.build_envs if e.value}
    if not values:
        return
    names = {e.name for e in bento.build_envs}
    bento_yaml = dest / "bento.yaml"
    if bento_yaml.is_file():
        data = yaml.safe_load(bento_yaml.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            _drop_values(data, names)
            docker = data.get("docker")
            if isinstance(docker, dict) and isinstance(docker.get("env"), dict):
                docker["env"] = {k: v for k, v in docker["env"].items() if k not in names} or None
            bento_yaml.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    bentofile = dest / "src" / "bentofile.yaml"
    if bentofile.is_file():
        try:
            data = yaml.safe_load(bentofile.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            data = None
        if isinstance(data, dict) and _drop_values(data, names):
            bentofile.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    pyproject = dest / "src" / "pyproject.toml"
    if pyproject.is_file():
        text = pyproject.read_text(encoding="utf-8")
        for value in values:
            # a TOML string holding the value, in either quoting: replaced by an empty one
            for literal in (json.dumps(value), f"'{value}'"):
                text = text.replace(literal, '""')
        pyproject.write_text(text, encoding="utf-8")


def _drop_values(data: dict[str, Any], names: set[str]) -> bool:
    """Remove ``value`` from the build-stage ``envs`` entries of ``data``; whether any was."""
    dropped = False
    for item in data.get("envs") or ():
        if isinstance(item, dict) and item.get("name") in names and item.get("stage") == "build":
            dropped = item.pop("value", None) is not None or dropped
    return dropped


def _fill_context(bento: Bento, dest: Path, dockerfile: str) -> None:
    _copy_bento(bento, dest)
    _scrub_build_values(bento, dest)
    requirements = dest / REQUIREMENTS_PATH
    if not requirements.is_file():
        requirements.parent.mkdir(parents=True, exist_ok=True)
        lines = requirement_lines(bento)
        requirements.write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    script = bento.docker.setup_script
    if script:
        source = (bento.path / script).resolve()
        if not source.is_file() or not source.is_relative_to(bento.path.resolve()):
            raise ConfigError(
                "setup_script not found in the bento",
                file=bento.bento_yaml,
                field="docker.setup_script",
            )
        target = dest / SETUP_SCRIPT_PATH
        target.parent.mkdir(parents=True, exist_ok=True)
        if source != (bento.path / SETUP_SCRIPT_PATH).resolve():
            shutil.copy2(source, target)
        target.chmod(0o755)
    entrypoint = dest / ENTRYPOINT_PATH
    entrypoint.parent.mkdir(parents=True, exist_ok=True)
    entrypoint.write_text(entrypoint_script(), encoding="utf-8")
    entrypoint.chmod(0o755)
    (dest / "Dockerfile").write_text(dockerfile, encoding="utf-8")


def check_output_dir(dest: str | os.PathLike[str]) -> Path:
    """``dest`` as an absolute path, if :func:`write_context` may write there: it does not exist
    (nor as a dangling symlink) or is an empty directory, and the nearest existing directory
    above it is a writable directory. A ConfigError naming ``dest`` otherwise (exit 2)."""
    target = user_path(dest, field="--output").absolute()
    field = "-o/--output"
    if target.is_symlink() and not target.exists():
        raise ConfigError(
            "output path is a symlink to nothing; remove it or pass another",
            file=target,
            field=field,
        )
    kind = kind_of(target)
    if kind not in (None, "dir") or (kind is None and os.path.lexists(target)):
        raise ConfigError("output path exists and is not a directory", file=target, field=field)
    if kind == "dir":
        try:
            empty = not any(target.iterdir())
        except OSError as exc:
            raise ConfigError(
                f"cannot read the output directory: {exc.strerror}", file=target, field=field
            ) from None
        if not empty:
            raise ConfigError(
                "output directory is not empty; refusing to write into it",
                file=target,
                field=field,
                hint="pass a new or empty directory",
            )
    parent = target.parent
    while kind_of(parent) is None and parent != parent.parent:
        if os.path.lexists(parent):
            break
        parent = parent.parent
    if kind_of(parent) != "dir":
        raise ConfigError(
            f"cannot create the output directory: {str(parent)!r} is not a directory",
            file=target,
            field=field,
        )
    try:  # really try: permissions, read-only mounts and pseudo file systems all say no here
        Path(tempfile.mkdtemp(prefix=".pipeline-probe-", dir=parent)).rmdir()
    except OSError as exc:
        raise ConfigError(
            f"cannot create the output directory in {str(parent)!r}: {exc.strerror or exc}",
            file=target,
            field=field,
        ) from None
    return target


def write_context(bento: Bento, dest: str | os.PathLike[str], dockerfile: str) -> Path:
    """Write a self-contained build context to ``dest`` (which must not exist or be empty):
    the bento's files, ``Dockerfile`` and ``env/docker/entrypoint.sh``. All or nothing: it is
    assembled in a sibling temporary directory and renamed into place."""
    target = check_output_dir(dest)
    try:
        created = make_dirs(target.parent)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise ConfigError(
            f"cannot create the output directory: {exc.strerror or exc}", file=target
        ) from None
    try:
        _fill_context(bento, staging, dockerfile)
        staging.chmod(0o755)
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        remove_created(created)
        if isinstance(exc, OSError):  # a full disk, a quota, a file that cannot be read
            raise _context_write_error(exc, target, staging) from None
        raise
    return target


def _context_write_error(exc: OSError, target: Path, staging: Path) -> ConfigError:
    """Why the context could not be written, naming the file it was at (exit 2)."""
    written = exc.filename2 or exc.filename  # a copy names its source first
    where = ""
    if written:
        path = Path(os.fsdecode(written))
        where = f" (at {path.relative_to(staging) if path.is_relative_to(staging) else path})"
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return ConfigError(
        f"cannot write the build context: {exc.strerror or exc}{where}; nothing was written",
        file=target,
        hint="free some space on that file system, or write somewhere else (export: -o DIR; "
        "a build's context: TMPDIR)"
        if full
        else None,
    )


@contextmanager
def temporary_context(bento: Bento, dockerfile: str) -> Iterator[Path]:
    """A build context in a temporary directory, removed on exit."""
    holder = Path(tempfile.mkdtemp(prefix="bento-context-"))
    try:
        yield write_context(bento, holder / "context", dockerfile)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


__all__ = [
    "CA_CERT_SECRET_ID",
    "Instruction",
    "Origin",
    "RenderOptions",
    "build_context",
    "build_env_secrets",
    "check_output_dir",
    "entrypoint_script",
    "find_step",
    "instruction_origins",
    "parse_dockerfile",
    "render_dockerfile",
    "requirement_lines",
    "temporary_context",
    "write_context",
]
