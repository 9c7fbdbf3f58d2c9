"""The stage graph: edits, topological order, and errors that name the stages."""

from __future__ import annotations

import pytest

from pipeline.errors import GraphError
from pipeline.graph import CopyFrom, Stage, StageGraph, default_graph

DEFAULT = ["base", "user", "envars", "components", "entrypoint"]


def names(graph: StageGraph) -> list[str]:
    return [stage.name for stage in graph.order()]


def test_single_stage_graph_order_and_blocks() -> None:
    graph = default_graph(buildstage=False)
    assert names(graph) == DEFAULT
    assert graph.blocks == (
        "SETUP_BENTO_BASE_IMAGE",
        "SETUP_BENTO_USER",
        "SETUP_BENTO_ENVARS",
        "SETUP_BENTO_COMPONENTS",
        "SETUP_BENTO_ENTRYPOINT",
    )
    assert graph.get("base").opens == "base-container"


def test_default_graph_builds_the_venv_in_a_buildstage_and_copies_it() -> None:
    graph = default_graph()
    assert names(graph) == ["base", "buildstage", "runtime", *DEFAULT[1:]]
    assert graph.blocks[:3] == (
        "SETUP_BENTO_BASE_IMAGE",
        "SETUP_BENTO_BUILDSTAGE",
        "SETUP_BENTO_RUNTIME",
    )
    components = graph.get("components")
    assert components.copies == (CopyFrom("buildstage", "/app/.venv", "/app/.venv"),)
    assert "buildstage" in components.requires
    # both stages start from base-container, the image is the runtime stage
    assert graph.get("buildstage").from_stage == graph.get("runtime").from_stage == "base"
    assert graph.build_stage_of("components") == "runtime"
    assert graph.build_stage_of("buildstage") == "buildstage"


def test_stage_block_name() -> None:
    assert Stage("models").block == "SETUP_BENTO_MODELS"
    assert Stage("base", block="SETUP_BENTO_BASE_IMAGE").block == "SETUP_BENTO_BASE_IMAGE"


@pytest.mark.parametrize("bad", ["Models", "1st", "has space", "", "a-b"])
def test_stage_name_must_be_an_identifier(bad: str) -> None:
    with pytest.raises(GraphError, match="invalid stage name"):
        Stage(bad)


def test_add_after_sits_right_after_its_anchor() -> None:
    graph = default_graph(buildstage=False).add(
        Stage("models", instructions=["RUN true"]), after="components"
    )
    assert names(graph) == ["base", "user", "envars", "components", "models", "entrypoint"]
    assert graph.get("models").depends_on == ("components",)


def test_add_before_makes_the_anchor_depend_on_it() -> None:
    graph = default_graph(buildstage=False).add(
        Stage("certs", instructions=["RUN true"]), before="user"
    )
    assert names(graph) == ["base", "certs", "user", "envars", "components", "entrypoint"]
    assert "certs" in graph.get("user").depends_on


def test_add_without_position_appends() -> None:
    graph = default_graph(buildstage=False).add(Stage("last", instructions=["RUN true"]))
    assert names(graph)[-1] == "last"


def test_add_duplicate_is_refused() -> None:
    with pytest.raises(GraphError, match="'user' is already in the graph"):
        default_graph(buildstage=False).add(Stage("user"), after="base")


def test_edits_return_new_graphs() -> None:
    graph = default_graph(buildstage=False)
    graph.add(Stage("extra"), after="base")
    assert names(graph) == DEFAULT


def test_replace_keeps_position_and_rewires_dependents() -> None:
    graph = default_graph(buildstage=False).replace(
        "envars", Stage("settings", instructions=["ENV A=1"], depends_on=("user",))
    )
    assert names(graph) == ["base", "user", "settings", "components", "entrypoint"]
    assert graph.get("components").depends_on == ("settings",)


def test_remove_lets_dependents_inherit() -> None:
    graph = default_graph(buildstage=False).remove("envars")
    assert names(graph) == ["base", "user", "components", "entrypoint"]
    assert graph.get("components").depends_on == ("user",)


def test_remove_refused_when_output_is_used() -> None:
    graph = default_graph(buildstage=True)
    with pytest.raises(GraphError, match="cannot remove stage 'buildstage'.*'components'"):
        graph.remove("buildstage")


def test_reorder_within_what_dependencies_allow() -> None:
    graph = default_graph(buildstage=False).add(
        Stage("a", instructions=["RUN a"]), after="components"
    )
    graph = graph.add(Stage("b", instructions=["RUN b"]), after="components")
    assert names(graph)[4:6] == ["b", "a"]
    moved = graph.reorder("a", before="b")
    assert names(moved)[4:6] == ["a", "b"]


def test_reorder_against_dependencies_names_them() -> None:
    with pytest.raises(GraphError, match="cannot move stage 'entrypoint' before 'user'"):
        default_graph(buildstage=False).reorder("entrypoint", before="user")


def test_depend_adds_an_edge() -> None:
    graph = default_graph(buildstage=False).add(Stage("late", instructions=["RUN x"]))
    graph = graph.add(Stage("early", instructions=["RUN y"]), after="base")
    graph = graph.depend("early", on="late")
    order = names(graph)
    assert order.index("late") < order.index("early")


def test_depend_with_copy_needs_a_build_stage() -> None:
    with pytest.raises(GraphError, match="'user' does not open a build stage"):
        default_graph(buildstage=False).depend("components", on="user", src="/a", dest="/b")


def test_depend_with_copy_from_a_new_build_stage() -> None:
    graph = default_graph(buildstage=False).add(
        Stage("tools", image="golang:1.22", instructions=["RUN go build -o /out/tool ."]),
        before="base",
    )
    graph = graph.depend("components", on="tools", src="/out/tool", dest="/usr/local/bin/tool")
    assert graph.get("components").copies == (
        CopyFrom("tools", "/out/tool", "/usr/local/bin/tool"),
    )
    assert names(graph)[0] == "tools"


def test_cycle_names_the_stages() -> None:
    with pytest.raises(GraphError, match="cycle") as info:
        default_graph(buildstage=False).depend("user", on="components")
    message = str(info.value)
    cycle = message.split("cycle: ", 1)[1].split(" -> ")
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {"user", "envars", "components"}
    assert "base" not in cycle


def test_unknown_reference_names_it_with_a_suggestion() -> None:
    graph = StageGraph((Stage("base", build_stage="base-container"), Stage("x", depends_on="usr")))
    with pytest.raises(GraphError) as info:
        graph.order()
    assert "stage 'x' refers to unknown stage 'usr'" in str(info.value)


def test_unknown_anchor_suggests_the_close_name() -> None:
    with pytest.raises(GraphError, match="unknown stage 'componets' \\(did you mean 'components'"):
        default_graph(buildstage=False).add(Stage("m"), after="componets")


def test_first_stage_must_open_a_build_stage() -> None:
    with pytest.raises(GraphError, match="opens no build stage"):
        default_graph(buildstage=False).add(Stage("early", instructions=["RUN x"]), before="base")


def test_image_and_from_stage_are_exclusive() -> None:
    with pytest.raises(GraphError, match="both image= and from_stage="):
        Stage("x", image="alpine:3", from_stage="base")


def test_image_must_be_a_reference() -> None:
    with pytest.raises(GraphError, match="not an image reference"):
        Stage("x", image="alpine:3\nRUN rm -rf /")


def test_order_is_deterministic() -> None:
    build = lambda: default_graph(buildstage=True).add(Stage("m", instructions=["RUN m"]))  # noqa: E731
    assert [s.name for s in build().order()] == [s.name for s in build().order()]
