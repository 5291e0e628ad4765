"""GET /api/openapi.json (OpenAPI 3.1 of every /api route, generated from each module's `Routes`
operations and their models) and GET /api/docs (an offline page rendering it)."""

from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path
from typing import Any

import msgspec
import orjson
from aiohttp import web

from rest.api import Operation, Routes
from rest.api_keys import SECURITY_SCHEMES
from rest.errors import Error

routes = Routes("docs")

_REF = "#/components/schemas/{name}"
ERROR_REF = {"$ref": _REF.format(name="Error")}
BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]

_REASONS = {
    400: "a bad parameter or field (named in the message and details)",
    401: "no valid access token",
    403: "not allowed to do this",
    404: "no such resource",
    409: "conflicts with the resource's current state",
    413: "the body is too large",
    422: "unprocessable",
    429: "rate limited; retry after Retry-After seconds",
    502: "the payment gateway failed",
    503: "unavailable",
}


def envelope(data: dict[str, Any], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON Schema of a success body {"success": true, "data": <data>, **meta}."""
    properties: dict[str, Any] = {"success": {"const": True}, "data": data}
    properties.update(meta or {})
    return {"type": "object", "required": ["success", "data", *(meta or {})], "properties": properties}


def json_response(schema: dict[str, Any], description: str = "success") -> dict[str, Any]:
    """A response object with a JSON body of `schema`."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*statuses: int) -> dict[str, Any]:
    """Response objects of the error envelope for each status (429 always: every route is rate limited)."""
    return {str(s): json_response(ERROR_REF, _REASONS.get(s, "error")) for s in sorted({*statuses, 429})}


def json_body(schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    """A requestBody object with a JSON body of `schema`."""
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def path_id(name: str = "id", description: str = "") -> dict[str, Any]:
    """A UUID path parameter object."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string", "format": "uuid"},
        "description": description or f"the {name}",
    }


def build_document(modules: list[str] | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every module's routes: each `Routes` operation, its schemas
    generated from its models. A path documented twice for one method is an error, never a silent
    replacement."""
    import rest

    paths: dict[str, dict[str, Any]] = {}
    operations: list[Operation] = []
    for name in rest.MODULES if modules is None else modules:
        module = importlib.import_module(name)
        table = getattr(module, "routes", None)
        if isinstance(table, Routes):
            operations.extend(table.operations)
    _, error_defs = msgspec.json.schema_components([Error], ref_template=_REF)
    components: dict[str, Any] = dict(error_defs)
    for op, operation in zip(operations, _operations(operations, components), strict=True):
        into = paths.setdefault(op.path, {})
        if op.method in into:
            raise ValueError(f"{op.tag} documents {op.method.upper()} {op.path} a second time")
        into[op.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gigwire API",
            "version": "1",
            "description": (
                "The REST API of gigwire. Success bodies are {success: true, data, ...}; errors are "
                "{success: false, error: {code, message, details?}}. Money is integer minor units "
                "(paise) with an ISO currency; timestamps are epoch milliseconds; ids are UUIDs. "
                "The realtime protocol is described by /api/asyncapi.json."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": dict(sorted(paths.items())),
        "components": {
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                **SECURITY_SCHEMES,
            },
            "schemas": dict(sorted(components.items())),
        },
    }


_PATH_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")


def _operations(operations: list[Operation], components: dict[str, Any]) -> list[dict[str, Any]]:
    """The OpenAPI operation object of each of `operations`; their models' schemas are added to
    `components` (one schema per model, referenced everywhere it is used)."""
    types: list[Any] = []
    for op in operations:
        types.append(op.body if op.body is not None else None)
        types.append(op.response)
        types.append(op.query if op.query is not None else None)
        types.extend(op.meta.values())
    schemas, defs = msgspec.json.schema_components(types, ref_template=_REF)
    components.update(defs)
    out = []
    index = 0
    for op in operations:
        body_schema, data_schema, query_schema = schemas[index : index + 3]
        meta_schemas = schemas[index + 3 : index + 3 + len(op.meta)]
        index += 3 + len(op.meta)
        operation: dict[str, Any] = {"summary": op.summary, "tags": [op.tag]}
        if op.description:
            operation["description"] = op.description
        if op.security is not None:
            operation["security"] = [dict(s) for s in op.security]
        elif op.auth:
            operation["security"] = BEARER
        parameters = list(op.parameters)
        named = {(p.get("in"), p.get("name")) for p in parameters}
        for name in _PATH_PARAM.findall(op.path):
            if ("path", name) not in named:
                parameters.append(path_id(name))
        if op.query is not None:
            required = {f.encode_name for f in msgspec.structs.fields(op.query) if f.required}
            props = components[op.query.__name__]["properties"] if op.query.__name__ in components else {}
            components.pop(op.query.__name__, None)
            for name, schema in props.items():
                if ("query", name) not in named:
                    parameters.append(
                        {"name": name, "in": "query", "required": name in required, "schema": schema}
                    )
        del query_schema
        if parameters:
            operation["parameters"] = parameters
        if op.body is not None:
            operation["requestBody"] = json_body(body_schema, op.body_required)
            if media_type := getattr(op.body, "media_type", None):  # e.g. a multipart form
                operation["requestBody"]["content"] = {media_type: {"schema": body_schema}}
        meta = dict(zip(op.meta, meta_schemas, strict=True))
        if op.response is None and not meta:
            success: dict[str, Any] = {"description": "success"}
        else:
            success = json_response(envelope(data_schema, meta), "created" if op.status == 201 else "success")
        operation["responses"] = {str(op.status): success, **errors(*op.errors, 400 if op.body else 429)}
        if op.auth is not False:  # a token is required, or optional but checked when sent
            operation["responses"].update(errors(401))
        operation["responses"].update(op.responses)
        operation["responses"] = dict(sorted(operation["responses"].items()))
        out.append(operation)
    return out


@functools.cache
def _document_bytes() -> bytes:
    # MODULES and their routes are fixed for the life of the process: build once.
    return orjson.dumps(build_document())


@functools.cache
def _docs_page() -> bytes:
    return Path(__file__).with_name("docs.html").read_bytes()


@routes.get(
    "/api/openapi.json",
    summary="This API's OpenAPI 3.1 document",
    responses={"200": json_response({"type": "object", "required": ["openapi", "paths"]}, "the document")},
)
async def openapi_json(request: web.Request) -> web.Response:
    """The OpenAPI document."""
    return web.Response(body=_document_bytes(), content_type="application/json")


@routes.get(
    "/api/docs",
    summary="A readable page of this API's routes (works offline)",
    responses={
        "200": {"description": "an HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}
    },
)
async def docs(request: web.Request) -> web.Response:
    """The docs page: plain HTML and JavaScript rendering /api/openapi.json, no network beyond it."""
    return web.Response(body=_docs_page(), content_type="text/html")


# Served by the hub itself (hub/app.py: the realtime contract is the hub's), documented here.
routes.operations.append(
    Operation(
        "get",
        "/api/asyncapi.json",
        "The realtime protocol's AsyncAPI 3.0 document (/ws and /socket.io/)",
        "docs",
        responses={
            "200": json_response({"type": "object", "required": ["asyncapi", "channels"]}, "the document")
        },
    )
)
