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
import jinja2.bccache
import jinja2.sandbox
from attrs import frozen

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


class CompiledTemplateCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept in ``directory`` (compiling the stage templates costs more than
    rendering them). Jinja keys each entry by template name and a checksum of its source, so a
    changed template is compiled again; this subclass only makes the cache best effort: a
    missing, unreadable or unwritable directory costs a compile, never a failed render."""

    def __init__(self, directory: Path) -> None:
        # compiled code also depends on the environment's settings and Jinja's version
        super().__init__(str(directory / f"jinja-{jinja2.__version__}-{_SETTINGS_VERSION}"))

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except (OSError, ValueError, EOFError):
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            Path(self.directory).mkdir(parents=True, exist_ok=True)
            super().dump_bytecode(bucket)
        except OSError:
            return


# bump when make_environment's settings change (they shape the compiled code)
_SETTINGS_VERSION = 1


def make_environment(
    extra_sources: Mapping[str, str] | None = None,
    *,
    bytecode_cache: jinja2.BytecodeCache | None = None,
) -> jinja2.Environment:
    """The environment every Dockerfile is rendered with: ``trim_blocks``, ``lstrip_blocks``,
    strict undefined variables, the quoting filters; templates from ``render/templates``,
    ``extra_sources`` (the generated base) and user templates by absolute path; compiled
    templates from ``bytecode_cache`` when given (:class:`CompiledTemplateCache`)."""
    loader = jinja2.ChoiceLoader(
        [
            jinja2.DictLoader(dict(extra_sources or {})),
            jinja2.PackageLoader("render", "templates"),
            _UserTemplateLoader(),
        ]
    )
    # the sandbox: a template from a stored bento (written by whoever built it, maybe BentoML on
    # another machine) must not reach Python internals (`''.__class__.__mro__`, a function's
    # globals, ...) and through them the building machine's files or processes
    env = jinja2.sandbox.SandboxedEnvironment(
        loader=loader,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        bytecode_cache=bytecode_cache,
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


def read_template(path: Path, *, field: str = "docker.dockerfile_template") -> str:
    """A user template's text: UTF-8 or a TemplateError naming the file (exit 2)."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TemplateError(
            f"not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}): "
            "a template is a text file",
            file=path,
            field=field,
        ) from None
    except OSError as exc:
        raise TemplateError(f"cannot read: {exc.strerror or exc}", file=path, field=field) from None


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


def dockerfile_lines(text: str) -> list[str]:
    """Lines as Dockerfile parsers see them: split at ``\n`` (a ``\r`` before it dropped) and
    nowhere else; ``str.splitlines`` would also split at U+2028, U+0085, form feeds..."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def tidy(text: str) -> str:
    """Collapse runs of blank lines, strip leading blank lines, end with one newline."""
    lines = dockerfile_lines(text)
    kept, _ = _tidy_traced(lines, [LineSource(None, None)] * len(lines))
    return "\n".join(kept) + "\n"


def render_template(
    env: jinja2.Environment, name: str, context: Mapping[str, Any], *, file: str | Path | None
) -> str:
    with template_errors(file):
        template = env.get_template(name)
        return tidy(template.render(**context))


# -- tracing: which block of which template produced each rendered line --------------------------

_MARK = re.compile("\x1e(\\d+|/)\x1f")
_END_MARK = "\x1e/\x1f"


@frozen
class LineSource:
    """Where one line of a rendered Dockerfile came from: the innermost Jinja ``block`` being
    rendered (``None`` outside every block) and the ``template`` that defined that block
    (:data:`BASE_TEMPLATE_NAME` or a user template's path)."""

    block: str | None
    template: str | None


class _TracedBlock:
    """A block function whose output is framed by markers naming the block. Equal to the
    function it wraps: ``super()`` finds the current block in the context by equality."""

    def __init__(self, func: Callable[[Any], Iterator[str]], start: str) -> None:
        self.func = func
        self.start = start

    def __call__(self, context: Any) -> Iterator[str]:
        yield self.start
        yield from self.func(context)
        yield _END_MARK

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _TracedBlock):
            return other.func is self.func
        return other is self.func

    def __hash__(self) -> int:
        return hash(self.func)


def _trace_blocks(template: jinja2.Template, records: list[LineSource]) -> None:
    """Wrap ``template``'s block functions so their output is framed by markers naming the block
    (index into ``records``). Only for a private environment: the template object is changed."""
    for name, func in list(template.blocks.items()):
        if isinstance(func, _TracedBlock):
            continue
        records.append(LineSource(name, template.name))
        template.blocks[name] = _TracedBlock(func, f"\x1e{len(records) - 1}\x1f")


def _untangle(raw: str, records: list[LineSource]) -> tuple[list[str], list[LineSource]]:
    """Strip the markers from ``raw``: its lines, and for each the source at its first
    non-blank character (blank lines get the source they sit in)."""
    stack: list[LineSource] = [LineSource(None, None)]
    lines: list[str] = [""]
    sources: list[LineSource | None] = [None]
    position = 0
    pieces: list[tuple[str, str | None]] = []
    for match in _MARK.finditer(raw):
        pieces.append((raw[position : match.start()], None))
        pieces.append(("", match.group(1)))
        position = match.end()
    pieces.append((raw[position:], None))
    for text, mark in pieces:
        if mark == "/":
            if len(stack) > 1:  # a start marker cut off by a filter leaves its end unmatched
                stack.pop()
            continue
        if mark is not None:
            stack.append(records[int(mark)])
            continue
        for i, part in enumerate(text.split("\n")):
            if i:
                lines.append("")
                sources.append(None)
            lines[-1] += part
            if sources[-1] is None and part.strip():
                sources[-1] = stack[-1]
    return lines, [s if s is not None else stack[0] for s in sources]


def _tidy_traced(lines: list[str], sources: list[LineSource]) -> tuple[list[str], list[LineSource]]:
    """Collapse runs of blank lines and strip leading/trailing ones (trailing spaces too),
    keeping each kept line's source: the one set of rules :func:`tidy` uses."""
    out: list[str] = []
    out_sources: list[LineSource] = []
    for line, source in zip(lines, sources, strict=True):
        line = line.rstrip()
        if not line and (not out or not out[-1]):
            continue  # leading blank line, or a second blank line in a row
        out.append(line)
        out_sources.append(source)
    while out and not out[-1]:
        out.pop()
        out_sources.pop()
    return out, out_sources


def render_traced(
    env: jinja2.Environment, name: str, context: Mapping[str, Any], *, file: str | Path | None
) -> tuple[str, list[LineSource]]:
    """:func:`render_template` plus, for each line of the result, the block and template that
    produced it. ``env`` must be private to this call (its templates' blocks get wrapped).

    Markers framing each block's output are stripped before the text is tidied, so the text is
    the same as :func:`render_template` gives; a template that transforms a block's output as a
    string (``{{ super() | trim }}``) could differ - callers compare and drop the trace then."""
    records: list[LineSource] = []
    load = env.get_template

    def get_template(*args: Any, **kwargs: Any) -> jinja2.Template:
        # every template the render loads (the one it extends, includes, ...) is traced
        loaded = load(*args, **kwargs)
        _trace_blocks(loaded, records)
        return loaded

    env.get_template = get_template  # type: ignore[method-assign]
    with template_errors(file):
        raw = env.get_template(name).render(**context)
    lines, sources = _untangle(raw, records)
    lines, sources = _tidy_traced(lines, sources)
    return "\n".join(lines) + "\n", sources


def _literal_pattern(line: str) -> re.Pattern[str] | None:
    """A regex for what a template line renders to (``{{ }}`` matches anything), or ``None``
    when the line has no literal text of its own."""
    line = re.sub(r"\{#.*?#\}|\{%.*?%\}", "", line).strip()
    parts = re.split(r"\{\{.*?\}\}", line)
    if not "".join(parts).strip():
        return None
    words = [" ".join(re.escape(w) for w in part.split()) for part in parts]
    return re.compile(".*?".join(words))


_BLOCK_TAG = re.compile(r"\{%-?\s*(block|endblock)\b\s*(\w*)[^%]*-?%\}")


def block_span(source: str, block: str | None) -> tuple[int, int]:
    """First and last line (1-based) of ``{% block NAME %}`` ... ``{% endblock %}`` in
    ``source``; the whole file for ``None`` or a block that is not there."""
    last = source.count("\n") + 1
    if block is None:
        return 1, last
    depth = 0
    start = None
    for match in _BLOCK_TAG.finditer(source):
        line = source.count("\n", 0, match.start()) + 1
        if match.group(1) == "block":
            if start is None and match.group(2) == block:
                start, depth = line, 0
            elif start is not None:
                depth += 1
        elif start is not None:
            if depth == 0:
                return start, line
            depth -= 1
    return (start or 1), last


def template_line(source: str, block: str | None, rendered: str, taken: set[int]) -> int | None:
    """The line of ``source`` (inside ``block``) that renders to the first line of ``rendered``:
    its literal text matches with ``{{ ... }}`` parts as wildcards. Lines in ``taken`` were given
    to earlier instructions and are skipped (the same text twice maps to two lines) unless no
    other line matches (a line in a loop renders more than once)."""
    wanted = " ".join(rendered.split("\n", 1)[0].split())
    lines = source.splitlines()
    first, last = block_span(source, block)
    matching = [
        number
        for number in range(first, min(last, len(lines)) + 1)
        if (pattern := _literal_pattern(lines[number - 1])) is not None
        and pattern.fullmatch(wanted)
    ]
    free = [number for number in matching if number not in taken]
    if free:
        taken.add(free[0])
        return free[0]
    # a line rendered again (a loop): the last line that matched
    return matching[-1] if matching else None
