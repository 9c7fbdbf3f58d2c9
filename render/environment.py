"""The Jinja environment, the base template generated from a stage graph, and error mapping.

``bento_base_template`` is generated per :class:`~pipeline.graph.StageGraph`: it sets the
``bento__*`` variables (each overridable with ``{% set %}`` in a user template, each validated),
then has one block per stage in topological order. A block holds the stage's ``FROM`` line when
it opens a build stage, its ``COPY --from=`` lines and its body (a file under ``templates/`` or
the stage's own instructions). A user ``dockerfile_template`` extends it and overrides blocks.

Jinja syntax and runtime errors become :class:`~pipeline.errors.TemplateError` with file:line.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2

from pipeline.errors import PipelineError, TemplateError
from pipeline.graph import StageGraph
from render.quoting import FILTERS

BASE_TEMPLATE_NAME = "<bento_base_template>"
TEMPLATE_EXTENSIONS = (".j2", ".template", ".jinja")

# Defaults of the user-settable variables (BentoML's), and the filter validating each.
VARIABLE_DEFAULTS: tuple[tuple[str, str, str], ...] = (
    ("bento__user", '"bentoml"', "user_name"),
    ("bento__uid_gid", '"1034:1034"', "uid_gid"),
    ("bento__home", '"/home/" ~ bento__user', "plain_path"),
    ("bento__path", 'bento__home ~ "/bento"', "plain_path"),
    ("bento__entrypoint", 'bento__path ~ "/env/docker/entrypoint.sh"', "plain_path"),
)


def _stage_source_name(stage_name: str) -> str:
    return f"<stage {stage_name}>"


def base_template_sources(graph: StageGraph) -> dict[str, str]:
    """Jinja sources of the generated base template and of stages given as instructions."""
    lines = [
        f'{{% set {name} = ({name} | default({default})) | {check}("{name}") %}}'
        for name, default, check in VARIABLE_DEFAULTS
    ]
    sources: dict[str, str] = {}
    for stage in graph.order():
        lines.append(f"{{% block {stage.block} %}}")
        ref = f'stages["{stage.name}"]'
        if stage.image is not None:
            lines.append(
                f'FROM {{{{ {ref}.image | image_ref("stage {stage.name}: image") }}}} '
                f"AS {stage.name}"
            )
        elif stage.from_stage is not None:
            lines.append(f"FROM {{{{ build_stage_of({ref}.from_stage) }}}} AS {stage.name}")
        for index, _copy in enumerate(stage.copies):
            copy = f"{ref}.copies[{index}]"
            field = f"stage {stage.name}: copies[{index}]"
            lines.append(
                f"COPY --from={{{{ build_stage_of({copy}.stage) }}}} "
                f'{{{{ {copy}.src | plain_path("{field}.src") }}}} '
                f'{{{{ {copy}.dest | plain_path("{field}.dest") }}}}'
            )
        if stage.template is not None:
            lines.append(f'{{% include "{stage.template}" %}}')
        elif stage.instructions:
            name = _stage_source_name(stage.name)
            sources[name] = "\n".join(stage.instructions) + "\n"
            lines.append(f'{{% include "{name}" %}}')
        lines.append("{% endblock %}\n")
    sources[BASE_TEMPLATE_NAME] = "\n".join(lines) + "\n"
    return sources


class _UserTemplateLoader(jinja2.BaseLoader):
    """Loads user templates by their path (so errors name the real file)."""

    def get_source(
        self, environment: jinja2.Environment, template: str
    ) -> tuple[str, str, Callable[[], bool]]:
        path = Path(template)
        if not path.is_absolute() or not path.is_file():
            raise jinja2.TemplateNotFound(template)
        return path.read_text(encoding="utf-8"), str(path), lambda: True


def make_environment(extra_sources: Mapping[str, str] | None = None) -> jinja2.Environment:
    """The environment every Dockerfile is rendered with: ``trim_blocks``, ``lstrip_blocks``,
    strict undefined variables, the quoting filters; templates from ``render/templates``,
    ``extra_sources`` (the generated base) and user templates by absolute path."""
    loader = jinja2.ChoiceLoader(
        [
            jinja2.DictLoader(dict(extra_sources or {})),
            jinja2.PackageLoader("render", "templates"),
            _UserTemplateLoader(),
        ]
    )
    env = jinja2.Environment(
        loader=loader,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
    )
    env.filters.update(FILTERS)
    return env


def check_template_path(path: Path, *, field: str = "docker.dockerfile_template") -> Path:
    """A user template must exist and end in .j2/.template/.jinja."""
    if not path.name.endswith(TEMPLATE_EXTENSIONS):
        raise TemplateError(
            f"{path.name!r} is not a Dockerfile template: the file must end in "
            + ", ".join(TEMPLATE_EXTENSIONS),
            file=path,
            field=field,
        )
    if not path.is_file():
        raise TemplateError("template file not found", file=path, field=field)
    return path


def _template_frame(tb: TracebackType | None) -> tuple[str, int] | None:
    """The innermost traceback frame that is a template (Jinja rewrites them to file:line)."""
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        is_template = filename.endswith(TEMPLATE_EXTENSIONS) or filename.startswith("<")
        if is_template and not filename.startswith("<frozen") and filename != "<string>":
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _is_user_template(filename: str) -> bool:
    return not filename.startswith("<") and _display_name(filename) == filename


def _display_name(name: str | None) -> str | None:
    if name is None:
        return None
    marker = f"{Path('render') / 'templates'}"
    if marker in name:
        return "render/templates/" + name.split(marker, 1)[1].lstrip("/\\")
    return name


@contextmanager
def template_errors(default_file: str | Path | None = None) -> Iterator[None]:
    """Turn Jinja errors into :class:`TemplateError` with file:line, and give
    :class:`PipelineError` raised by filters a file:line when they have none."""
    try:
        yield
    except jinja2.TemplateSyntaxError as exc:
        name = _display_name(exc.filename or exc.name) or (
            str(default_file) if default_file else None
        )
        raise TemplateError(
            f"template syntax error: {exc.message}", file=name, line=exc.lineno
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(
            f"template {exc.name!r} not found",
            file=default_file,
            hint="a user template extends the variable bento_base_template: "
            "{% extends bento_base_template %} (no quotes)",
        ) from None
    except jinja2.UndefinedError as exc:
        raise _at_template_frame(
            f"{exc.message}",
            default_file,
            hint="variables available to templates are listed in docs/templates.md",
        ) from None
    except PipelineError as exc:
        # A filter refused a value. When the value was written in a user template, point there;
        # values from config keep their field and get the config file from the caller.
        if exc.file is None:
            where = _template_frame(sys.exc_info()[2])
            if where is not None and _is_user_template(where[0]):
                exc.file = where[0]
                exc.line = where[1]
        raise
    except jinja2.TemplateError as exc:
        raise _at_template_frame(f"template error: {exc}", default_file) from None


def _at_template_frame(
    message: str, default_file: str | Path | None, *, hint: str | None = None
) -> TemplateError:
    """A :class:`TemplateError` at the template line the exception being handled was raised from
    (or ``default_file`` when no template frame is on its traceback)."""
    where = _template_frame(sys.exc_info()[2])
    return TemplateError(
        message,
        file=_display_name(where[0]) if where else default_file,
        line=where[1] if where else None,
        hint=hint,
    )


_BLANK_RUNS = re.compile(r"\n{3,}")


def tidy(text: str) -> str:
    """Collapse runs of blank lines, strip leading blank lines, end with one newline."""
    lines = [line.rstrip() for line in text.splitlines()]
    text = _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip("\n")
    return text + "\n"


def render_template(
    env: jinja2.Environment, name: str, context: Mapping[str, Any], *, file: str | Path | None
) -> str:
    with template_errors(file):
        template = env.get_template(name)
        return tidy(template.render(**context))
