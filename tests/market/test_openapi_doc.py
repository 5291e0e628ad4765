"""/api/openapi.json covers every /api route the app registers, is OpenAPI 3.1 with the bearer scheme
and the error envelope, and /api/docs is a self-contained page."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from rest.api import Routes
from rest.openapi import build_document

SAMPLE_ID = "00000000-0000-0000-0000-000000000000"


def api_routes(app: web.Application) -> list[tuple[str, str, Any]]:
    """(canonical path, lowercase method, resource) of every /api route of the app."""
    found = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or not resource.canonical.startswith("/api"):
            continue
        if route.method not in ("HEAD", "OPTIONS", "*"):
            found.append((resource.canonical, route.method.lower(), resource))
    return found


def serves(resource: Any, path: str) -> bool:
    """Whether the aiohttp resource answers the documented path (its {params} given sample values)."""
    sample = re.sub(r"\{\w+\}", SAMPLE_ID, path)
    info = resource.get_info()
    if "pattern" in info:
        return info["pattern"].fullmatch(sample) is not None
    return bool(info.get("path") == sample)


async def test_every_registered_route_is_documented(client: Any) -> None:
    resp = await client.get("/api/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    documented = [(path, method) for path, methods in doc["paths"].items() for method in methods]
    routes = api_routes(client.app)
    # a route with a path pattern (e.g. /api/orders/{id}/{action:submit|approve}) may be documented
    # as several concrete paths; each route needs at least one, each documented path a route
    missing = sorted(
        f"{method.upper()} {canonical}"
        for canonical, method, resource in routes
        if not any(m == method and serves(resource, p) for p, m in documented)
    )
    assert not missing, f"routes missing from the OpenAPI document: {missing}"
    stale = sorted(
        f"{method.upper()} {path}"
        for path, method in documented
        if not any(m == method and serves(r, path) for _, m, r in routes)
    )
    assert not stale, f"documented but not served: {stale}"


async def test_document_shape(client: Any) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
    }  # fmt: skip
    assert doc["components"]["schemas"]["Error"]["required"] == ["success", "error"]
    gigs = doc["paths"]["/api/gigs"]["get"]
    names = {p["name"] for p in gigs["parameters"]}
    assert names == {
        "category", "skills", "budgetMin", "budgetMax", "deadline", "status", "sortBy", "sortOrder", "page",
        "limit", "search", "cursor",
    }  # fmt: skip
    assert "security" not in gigs  # no token needed
    assert doc["paths"]["/api/gigs"]["post"]["security"] == [{"bearerAuth": []}]
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            assert op.get("summary"), f"{method} {path} has no summary"
            assert any(s.startswith("2") for s in op["responses"]), f"{method} {path} has no success response"


def test_a_module_documenting_a_route_twice_is_refused(monkeypatch: Any) -> None:
    import sys
    import types

    twin = types.ModuleType("rest_twin_for_test")
    routes = Routes("twin")

    @routes.get("/api/gigs", summary="again")
    async def again(request: Any) -> Any:
        raise AssertionError("never served")

    twin.routes = routes  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "rest_twin_for_test", twin)
    try:
        build_document(["rest.gigs", "rest_twin_for_test"])
    except ValueError as exc:
        assert "GET /api/gigs" in str(exc)
    else:
        raise AssertionError("a second GET /api/gigs was merged silently")


async def test_docs_page_is_self_contained(client: Any) -> None:
    resp = await client.get("/api/docs")
    assert resp.status == 200
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert "/api/openapi.json" in html
    # nothing fetched from elsewhere: no external scripts, styles or fonts
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "@import" not in html and "cdn" not in html.lower()
