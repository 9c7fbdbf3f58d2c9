"""The one Dockerfile parser: instructions as BuildKit reads them, the same for every caller."""

from __future__ import annotations

from pipeline.dagger.spec import SecretMount, secret_mounts
from pipeline.dockerfile import parse_dockerfile
from pipeline.origins import find_step


def test_parse_dockerfile_numbers_as_the_engines_do() -> None:
    text = (
        "ARG X=1\n"
        "FROM python:3.11-slim AS base\n"
        "# a comment\n"
        "ENV A=1\n"
        "RUN echo one \\\n"
        "    # inside\n"
        "    && true\n"
        "\n"
        "FROM base\n"
        "WORKDIR /x\n"
    )
    got = [(i.line, i.build_stage, i.number, i.index, i.step) for i in parse_dockerfile(text)]
    assert got == [
        (1, None, 1, 0, 0),
        (2, "base", 2, 1, 1),
        (4, "base", 3, 2, 0),
        (5, "base", 4, 3, 2),
        (9, "stage-1", 5, 1, 1),
        (10, "stage-1", 6, 2, 2),
    ]
    assert parse_dockerfile(text)[3].text == "RUN echo one \\\n    && true"


# A comment line and a blank line inside a continuation: BuildKit drops both and the RUN goes on
# (the blank one with its NoEmptyContinuation warning), so both mounts belong to line 2.
INNER_COMMENT = (
    "FROM python:3.11-slim AS base\n"
    "RUN --mount=type=secret,id=a,required \\\n"
    "    # the second mount needs the first\n"
    "    --mount=type=secret,id=b,required \\\n"
    "\n"
    "    cat /run/secrets/a /run/secrets/b\n"
    "RUN echo done\n"
)


def test_the_parser_and_the_secret_mount_check_agree_across_an_inner_comment() -> None:
    instructions = parse_dockerfile(INNER_COMMENT)
    assert [(i.line, i.keyword, i.step) for i in instructions] == [
        (1, "FROM", 1),
        (2, "RUN", 2),
        (7, "RUN", 3),
    ]
    run = instructions[1]
    assert run.logical == (
        "RUN --mount=type=secret,id=a,required     --mount=type=secret,id=b,required     "
        "cat /run/secrets/a /run/secrets/b"
    )
    # the Dagger executor's check (the old loop there ended the RUN at the comment and lost b)
    assert secret_mounts(INNER_COMMENT) == (
        SecretMount(id="a", line=2, required=True),
        SecretMount(id="b", line=2, required=True),
    )
    # the failing-step lookup: BuildKit's header for that step names the same instruction
    header = f"[base 2/3] {run.logical}"
    found = find_step(header, instructions)
    assert found is not None and found.line == 2
    mounted = {i.line for i in instructions if "type=secret" in i.logical}
    assert {m.line for m in secret_mounts(INNER_COMMENT)} == mounted


def test_logical_joins_continuations_as_buildkit_does() -> None:
    # docker 28 showed this step as "RUN echo two &&     exit 3" (tests/test_plan.py OBSERVED)
    assert parse_dockerfile("RUN echo two && \\\n    exit 3\n")[0].logical == (
        "RUN echo two &&     exit 3"
    )
    # a continuation in the middle of a word joins the word, blanks after the \ included
    split = "FROM x\nRUN --mount=type=secret,id=\\  \ntok true\n"
    assert parse_dockerfile(split)[1].logical == "RUN --mount=type=secret,id=tok true"
    assert secret_mounts(split) == (SecretMount(id="tok", line=2, required=False),)


def test_an_instruction_open_at_the_end_of_the_file_is_kept() -> None:
    text = "FROM x\nRUN --mount=type=secret,id=tok true \\"
    last = parse_dockerfile(text)[-1]
    assert (last.line, last.keyword, last.logical) == (
        2,
        "RUN",
        "RUN --mount=type=secret,id=tok true",
    )
    assert [m.id for m in secret_mounts(text)] == ["tok"]
