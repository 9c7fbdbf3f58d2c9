"""A stand-in Dagger session for contract tests: the real SDK talks to it over HTTP.

It serves ``POST /query`` on 127.0.0.1 like ``dagger session`` does:

- checks the session token (HTTP Basic, token as user name, empty password) - 401 otherwise;
- parses every query and validates it against the pinned v0.21 schema with graphql-core's full
  rule set (``graphql.validate`` with ``specified_rules``); invalid queries get GraphQL errors;
- answers from the schema: introspection by graphql-core itself, every other field with a value
  of its declared type (IDs are strings that map back to the call chain that produced them,
  scalars by type, objects by walking the selection set, ``node(id:)`` by the inline fragment);
- records every request (raw text, parsed document, validation errors) for assertions.

Tests can override a field with ``server.override("Container", "publish", fn)``; ``fn(obj,
args)`` gets the parent :class:`Obj` (with the call chain in ``obj.trail``) and the coerced
arguments, and may return a value or raise :class:`ExecFailure` to answer like a failing ``RUN``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import fakeregistry
import graphql
from graphql import (
    DocumentNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
)

# The shared folder sits beside the checkout (../shared) on developer machines and in CI.
SCHEMA_PATH = Path(__file__).resolve().parents[3] / "shared" / "dagger" / "schema.graphqls"

# what every publish reports: the digest of the correct two-platform index the fake registry
# serves for any tag, so the executor's read-back of a published image finds it as reported
FAKE_DIGEST = fakeregistry.STANDARD


@dataclass(frozen=True)
class Step:
    """One field call in a chain: ``Type.field(args)``."""

    type: str
    field: str
    args: tuple[tuple[str, Any], ...]

    def arg(self, name: str, default: Any = None) -> Any:
        return dict(self.args).get(name, default)


@dataclass
class Obj:
    """An object value: its GraphQL type and the chain of calls that produced it."""

    type: str
    trail: tuple[Step, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)  # fixed field values (from overrides)

    def find(self, type_name: str, field_name: str) -> Step | None:
        """The last step in the chain calling ``type_name.field_name``."""
        for step in reversed(self.trail):
            if step.type == type_name and step.field == field_name:
                return step
        return None


class ExecFailure(Exception):
    """Raise from an override to answer like a failing ``RUN`` (an ``EXEC_ERROR``)."""

    def __init__(
        self, cmd: list[str], exit_code: int = 1, stdout: str = "", stderr: str = ""
    ) -> None:
        super().__init__(f'process "{" ".join(cmd)}" did not complete successfully: exit code: 1')
        self.extensions = {
            "_type": "EXEC_ERROR",
            "cmd": cmd,
            "exitCode": exit_code,
            "stdout": stdout,
            "stderr": stderr,
        }


@dataclass
class Request:
    """One recorded POST /query."""

    text: str
    document: DocumentNode | None
    errors: list[str] = field(default_factory=list)
    introspection: bool = False


@dataclass(frozen=True)
class Call:
    """A field selected in a recorded query, with its literal arguments."""

    field: str
    args: dict[str, Any]
    request: Request


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw_args(args: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, _freeze(v)) for k, v in args.items()))


@functools.lru_cache(maxsize=4)
def _build_schema(sdl: str) -> GraphQLSchema:
    return graphql.build_schema(sdl)  # ~0.5 s for the Dagger schema: once per test session


class _Server(ThreadingHTTPServer):
    # the SDK resolves object arguments concurrently: the default backlog of 5 drops connections
    request_queue_size = 128
    daemon_threads = True


class ContractServer:
    """The session server; use as a context manager (``with ContractServer(...) as server``)."""

    def __init__(self, schema_sdl: str, token: str = "contract-token") -> None:
        self.schema: GraphQLSchema = _build_schema(schema_sdl)
        self.token = token
        self.requests: list[Request] = []
        self.unauthorized = 0
        self.ids: dict[str, Obj] = {}
        self._overrides: dict[tuple[str, str], Callable[[Obj, dict[str, Any]], Any]] = {}
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.override("Query", "version", lambda obj, args: "v0.21.11")
        self.override("Query", "defaultPlatform", lambda obj, args: "linux/amd64")
        self.override("Container", "publish", lambda obj, args: f"{args['address']}@{FAKE_DIGEST}")
        self.override("Container", "export", lambda obj, args: args["path"])
        self.override("Directory", "export", lambda obj, args: args["path"])
        self.override("File", "export", lambda obj, args: args["path"])
        self.override("File", "digest", lambda obj, args: FAKE_DIGEST)

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._httpd is not None
        return int(self._httpd.server_address[1])

    def __enter__(self) -> ContractServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet: bodies hold secrets
                pass

            def do_POST(self) -> None:
                expected = "Basic " + base64.b64encode(f"{server.token}:".encode()).decode()
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/query" or self.headers.get("Authorization") != expected:
                    with server._lock:
                        server.unauthorized += 1
                    self.send_response(401 if self.path == "/query" else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                payload = server.handle(json.loads(body or b"{}"))
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- behaviour -------------------------------------------------------------------------
    def override(
        self, type_name: str, field_name: str, fn: Callable[[Obj, dict[str, Any]], Any]
    ) -> None:
        """Answer ``type_name.field_name`` with ``fn(parent, args)`` instead of a typed dummy."""
        field_map = self.schema.get_type(type_name)
        assert isinstance(field_map, GraphQLObjectType), type_name
        assert field_name in field_map.fields, f"{type_name}.{field_name} is not in the schema"
        self._overrides[(type_name, field_name)] = fn

    def handle(self, payload: dict[str, Any]) -> dict[str, Any]:
        text = payload.get("query") or ""
        try:
            document = graphql.parse(text)
        except GraphQLError as exc:
            self._record(Request(text, None, [exc.message]))
            return {"errors": [exc.formatted]}
        errors = graphql.validate(self.schema, document, graphql.specified_rules)
        introspection = "__schema" in text
        request = Request(text, document, [e.message for e in errors], introspection)
        self._record(request)
        if errors:
            return {"errors": [e.formatted for e in errors]}
        result = graphql.execute(
            self.schema,
            document,
            root_value=Obj("Query"),
            variable_values=payload.get("variables"),
            field_resolver=self._resolve,
            type_resolver=self._resolve_type,
        )
        assert not graphql.pyutils.is_awaitable(result)
        answer: dict[str, Any] = {"data": result.data}  # type: ignore[union-attr]
        if result.errors:  # type: ignore[union-attr]
            answer["errors"] = [e.formatted for e in result.errors]  # type: ignore[union-attr]
        return answer

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _new_id(self, obj: Obj) -> str:
        state = (obj.type, obj.trail, sorted(obj.data.items()))
        digest = hashlib.sha256(repr(state).encode()).hexdigest()[:16]
        ident = f"fake-{obj.type}-{digest}"
        with self._lock:
            self.ids[ident] = obj
        return ident

    def _resolve(self, parent: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        if info.field_name.startswith("__") or info.parent_type.name.startswith("__"):
            return graphql.default_field_resolver(parent, info, **args)
        obj = parent if isinstance(parent, Obj) else Obj(info.parent_type.name)
        if info.field_name in obj.data:
            return obj.data[info.field_name]
        self._check_id_args(info, args)
        key = (info.parent_type.name, info.field_name)
        step = Step(info.parent_type.name, info.field_name, _thaw_args(args))
        if key in self._overrides:
            return self._overrides[key](Obj(obj.type, (*obj.trail, step)), args)
        if info.field_name == "id":
            return self._new_id(obj)
        if info.field_name == "sync":  # returns the receiver's id
            return self._new_id(obj)
        if info.field_name == "node":
            known = self.ids.get(args["id"])
            if known is None:
                raise GraphQLError(f"unknown id {args['id']!r}")
            return known
        return self._dummy(info.return_type, Obj(obj.type, (*obj.trail, step)), info)

    def _check_id_args(self, info: GraphQLResolveInfo, args: dict[str, Any]) -> None:
        """IDs must be ones this session handed out, of the ``@expectedType`` the schema says."""
        definition = info.parent_type.fields[info.field_name]  # type: ignore[union-attr]
        for name, value in args.items():
            node = definition.args[name].ast_node
            expected = next(
                (
                    d.arguments[0].value.value  # type: ignore[attr-defined]
                    for d in ((node.directives or ()) if node else ())
                    if d.name.value == "expectedType" and d.arguments
                ),
                None,
            )
            if expected is None or value is None:
                continue
            for ident in value if isinstance(value, list) else [value]:
                known = self.ids.get(ident)
                if known is None:
                    raise GraphQLError(f"{info.field_name}.{name}: unknown id {ident!r}")
                if known.type != expected:
                    raise GraphQLError(
                        f"{info.field_name}.{name}: expected a {expected} id, got a {known.type}"
                    )

    def _dummy(self, type_: Any, obj: Obj, info: GraphQLResolveInfo) -> Any:
        if isinstance(type_, GraphQLNonNull):
            return self._dummy(type_.of_type, obj, info)
        if isinstance(type_, GraphQLList):
            return []
        if isinstance(type_, GraphQLEnumType):
            return next(iter(type_.values.values())).value
        if isinstance(type_, GraphQLScalarType):
            return {
                "ID": f"fake-id-{info.field_name}",
                "String": f"fake-{info.field_name}",
                "Boolean": False,
                "Int": 0,
                "Float": 0.0,
                "Platform": "linux/amd64",
                "JSON": "{}",
                "Void": None,
            }.get(type_.name, f"fake-{type_.name}")
        if isinstance(type_, GraphQLObjectType):
            return Obj(type_.name, obj.trail)
        # An interface (``node`` answers through _resolve): take the fragment's type.
        return Obj(self._fragment_type(info) or "Query", obj.trail)

    @staticmethod
    def _fragment_type(info: GraphQLResolveInfo) -> str | None:
        for node in info.field_nodes:
            for selection in node.selection_set.selections if node.selection_set else ():
                if isinstance(selection, InlineFragmentNode) and selection.type_condition:
                    return selection.type_condition.name.value
        return None

    def _resolve_type(self, value: Any, info: GraphQLResolveInfo, abstract: Any) -> str:
        if isinstance(value, Obj):
            if value.type == "Query":
                return self._fragment_type(info) or "Query"
            return value.type
        return self._fragment_type(info) or "Query"

    # -- assertions ------------------------------------------------------------------------
    def api_requests(self) -> list[Request]:
        """Recorded requests other than the SDK's schema introspection."""
        return [r for r in self.requests if not r.introspection]

    def rejected(self) -> list[Request]:
        return [r for r in self.requests if r.errors]

    def calls(self, field_name: str) -> list[Call]:
        """Every selection of ``field_name`` in the recorded (valid) queries, in order."""
        found = []
        for request in self.api_requests():
            if request.document is None or request.errors:
                continue
            for node in _walk_fields(request.document):
                if node.name.value == field_name:
                    args = {
                        a.name.value: graphql.value_from_ast_untyped(a.value)
                        for a in node.arguments or ()
                    }
                    found.append(Call(field_name, args, request))
        return found

    def origin(self, ident: str) -> Obj:
        """The object (and its call chain) an id handed out by this server stands for."""
        return self.ids[ident]

    def all_text(self) -> str:
        return "\n".join(r.text for r in self.requests)


def _walk_fields(document: DocumentNode) -> Iterator[graphql.FieldNode]:
    stack: list[Any] = list(document.definitions)
    while stack:
        node = stack.pop(0)
        if isinstance(node, graphql.FieldNode):
            yield node
        selection_set = getattr(node, "selection_set", None)
        if selection_set is not None:
            stack[0:0] = list(selection_set.selections)
