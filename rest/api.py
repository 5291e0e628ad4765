"""Typed routes: one msgspec model per request and response shape drives validation of what comes
in, encoding of what goes out and the route's OpenAPI operation (rest/openapi.py builds the document
from every module's `Routes`).

A module declares its routes on a `Routes`:

    routes = Routes("gigs")

    @routes.post("/api/gigs", body=GigInput, response=Gig, status=201, auth=True, errors=(400, 403),
                 summary="Post a gig (client role)")
    async def create_gig(request: web.Request, body: GigInput) -> web.Response: ...

With `body`, the handler gets the decoded, validated body as its second argument (after the token
check when `auth` is set, so a caller without a token hears 401 before 400); a body that does not fit
is answered 400 `bad_request` naming every bad field in `details.fields`. Handlers answer with
`ok(data, **meta)`; `data` may be models, lists of models or plain JSON values."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import msgspec
import orjson
from aiohttp import web

from hub.model import Wire, load, load_all
from rest.errors import ApiError

__all__ = [
    "Body",
    "Deleted",
    "FieldErrors",
    "Routes",
    "Wire",
    "bad_fields",
    "convert",
    "has_control",
    "load",
    "load_all",
    "ok",
    "read_body",
]

M = TypeVar("M", bound=msgspec.Struct)
Handler = Callable[..., Awaitable[web.StreamResponse]]

_ENCODER = msgspec.json.Encoder()
_AT = re.compile(r" - at `\$[^`]*`$")


class Body(msgspec.Struct, rename="camel", forbid_unknown_fields=True, kw_only=True):
    """A request body: camelCase on the wire, unknown fields refused. Top-level strings arrive
    stripped of surrounding white space unless named in `keep_spaces`; a NUL character anywhere is
    refused (PostgreSQL text cannot hold it). Cross-field rules go in `__post_init__`, raising
    `FieldErrors`."""

    keep_spaces: ClassVar[frozenset[str]] = frozenset()
    """Wire names of string fields taken exactly as sent."""
    unpadded: ClassVar[frozenset[str]] = frozenset()
    """Wire names of string fields taken as sent but refused when white space surrounds them (a
    format such as a phone number allows none; a regex's `$` would let a final newline through)."""
    whole_floats: ClassVar[frozenset[str]] = frozenset()
    """Wire names of integer fields that also take a float without a fraction: JSON has one number
    type, so 2029.0 is the integer 2029."""
    unknown_reasons: ClassVar[Mapping[str, str]] = {}
    """Wire name -> why a field that is not accepted is refused (default: not a known field)."""


class Deleted(Wire):
    """The answer of a DELETE route."""

    id: str
    deleted: bool = True


class FieldErrors(Exception):
    """Raised by a model's `__post_init__` (or a handler) for rules between fields: wire name ->
    problem. Answered as 400 bad_request naming each field."""

    def __init__(self, fields: Mapping[str, str]) -> None:
        super().__init__(", ".join(fields))
        self.fields = dict(fields)


def bad_fields(fields: Mapping[str, str]) -> ApiError:
    """The one 400 answer for bad fields: the message names them, `details.fields` says why."""
    names = ", ".join(sorted(fields))
    return ApiError("bad_request", f"Fix these fields: {names}.", details={"fields": dict(fields)})


def _reason(exc: msgspec.ValidationError) -> str:
    return _AT.sub("", str(exc))


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def has_control(text: str) -> bool:
    """True when `text` holds a control character other than tab and newlines (PostgreSQL refuses
    NUL, and none of them belongs in a name, reason or URL)."""
    return _CONTROL.search(text) is not None


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    return False


def convert(model: type[M], data: Any) -> M:
    """`data` (a JSON object already parsed) as `model`, or 400 naming every bad field."""
    if not isinstance(data, dict):
        raise ApiError("bad_request", "The body must be a JSON object.")
    problems: dict[str, str] = {}
    unpadded: frozenset[str] = getattr(model, "unpadded", frozenset())
    keep: frozenset[str] = getattr(model, "keep_spaces", frozenset()) | unpadded
    whole: frozenset[str] = getattr(model, "whole_floats", frozenset())
    cleaned: dict[str, Any] = {}
    for key, value in data.items():
        if _has_nul(value):
            problems[key] = "must not contain NUL characters"
        elif key in unpadded and isinstance(value, str) and value != value.strip():
            problems[key] = "must not start or end with spaces"
        if isinstance(value, str) and key not in keep:
            cleaned[key] = value.strip()
        elif key in whole and isinstance(value, float) and value.is_integer():
            cleaned[key] = int(value)
        else:
            cleaned[key] = value
    if not problems:
        try:
            return msgspec.convert(cleaned, model, strict=True)
        except FieldErrors as exc:
            raise bad_fields(exc.fields) from None
        except msgspec.ValidationError as exc:
            problems = _diagnose(model, cleaned) or {"body": _reason(exc)}
    else:  # name the other bad fields too
        problems = {**_diagnose(model, cleaned), **problems}
    raise bad_fields(problems)


def _diagnose(model: type[msgspec.Struct], data: Mapping[str, Any]) -> dict[str, str]:
    """Every field's problem, checking the fields one by one (msgspec stops at the first)."""
    problems: dict[str, str] = {}
    known = set()
    for info in msgspec.structs.fields(model):
        known.add(info.encode_name)
        if info.encode_name not in data:
            if info.required:
                problems[info.encode_name] = "is required"
            continue
        try:
            msgspec.convert(data[info.encode_name], info.type, strict=True)
        except msgspec.ValidationError as exc:
            problems[info.encode_name] = _reason(exc)
    config = model.__struct_config__
    if config.forbid_unknown_fields:
        reasons: Mapping[str, str] = getattr(model, "unknown_reasons", {})
        for key in data:
            if key not in known:
                problems[key] = reasons.get(key, "is not a known field")
    return problems


async def read_body(request: web.Request, model: type[M]) -> M:
    """The request body as `model`; an empty body is `{}`."""
    raw = await request.read()
    if not raw:
        return convert(model, {})
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ApiError("bad_request", "The body is not valid JSON.") from None
    return convert(model, data)


def ok(data: Any, status: int = 200, **meta: Any) -> web.Response:
    """The success shape `{"success": true, "data": ..., **meta}`."""
    body: dict[str, Any] = {"success": True, "data": data}
    body.update(meta)
    return web.Response(body=_ENCODER.encode(body), status=status, content_type="application/json")


@dataclass(frozen=True)
class Operation:
    """One documented route: what rest/openapi.py turns into an OpenAPI operation."""

    method: str
    path: str
    summary: str
    tag: str
    description: str = ""
    body: type[msgspec.Struct] | None = None
    body_required: bool = True
    response: Any = None
    """The type of `data` in the success body (a model, list[model], dict...), None: no body."""
    status: int = 200
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Top-level keys beside `data` in the success body: name -> type."""
    auth: bool | None = False
    """True: a bearer token is required; None: optional; False: none."""
    errors: tuple[int, ...] = ()
    parameters: tuple[dict[str, Any], ...] = ()
    """Extra OpenAPI parameter objects (query, headers); {name} path parameters are added."""
    query: type[msgspec.Struct] | None = None
    """A model whose fields are the route's query parameters (documentation only)."""
    responses: Mapping[str, Any] = field(default_factory=dict)
    """Extra or replacing OpenAPI response objects by status."""
    security: tuple[Mapping[str, list[str]], ...] | None = None
    """OpenAPI security requirements replacing the bearer token's (the server API's keys)."""


class Routes:
    """A module's routes and their operations. `table` is what aiohttp mounts."""

    def __init__(self, tag: str) -> None:
        self.tag = tag
        self.table = web.RouteTableDef()
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[msgspec.Struct] | None = None,
        auth: bool | None = False,
        document: Iterable[str] | Mapping[str, Mapping[str, Any]] | None = None,
        parse: bool = True,
        **operation: Any,
    ) -> Callable[[Handler], Handler]:
        """Register `method path`. `document` lists the concrete paths to document when `path` is an
        aiohttp pattern such as /api/orders/{id}/{action:submit|approve} (default: `path`); as a mapping,
        each concrete path maps to what its operation declares differently (summary, body, ...). With
        `parse=False`, `body` only documents the request body: the handler gets no body argument and
        reads (or verifies) the body itself, e.g. after checks that must answer first."""

        def register(handler: Handler) -> Handler:
            served = handler
            if body is not None and parse:
                model = body

                async def served(request: web.Request) -> web.StreamResponse:
                    if auth:
                        from rest.http import require_user

                        require_user(request)
                    return await handler(request, await read_body(request, model))

                served.__name__ = handler.__name__
                served.__doc__ = handler.__doc__
            self.table.route(method.upper(), path)(served)
            listed = document if document is not None else [path]
            paths = listed if isinstance(listed, Mapping) else {key: {} for key in listed}
            for documented, differs in paths.items():
                declared = {"summary": summary, "body": body, "auth": auth, **operation, **differs}
                self.operations.append(Operation(method.lower(), documented, tag=self.tag, **declared))
            return handler

        return register

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)


def int_query(name: str, minimum: int, maximum: int) -> dict[str, Any]:
    """The OpenAPI parameter object of an optional integer query parameter (read with
    rest.http.query_int and the same bounds), for a route's `parameters`."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": minimum, "maximum": maximum},
    }
