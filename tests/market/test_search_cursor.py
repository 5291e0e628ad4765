"""GET /api/gigs and /my-gigs keyset pages: a cursor walk yields every gig exactly once in the order
page mode gives (for every sortBy, both directions, with ties on every key), bad or forged cursors
are a 400 naming `cursor`, and `total` is exact up to its bound, estimated and flagged beyond it."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import asyncpg
import pytest

from rest import gig_query
from rest.gig_cursor import CursorCodec, Position
from rest.openapi import build_document
from tests.factories import TestUser
from tests.market.conftest import marker

GIGS = 14


@pytest.fixture
async def tied(pool: asyncpg.Pool, owner: TestUser) -> dict[str, Any]:
    """GIGS open gigs of one marker skill whose every sort key ties with others': 3 created_at
    instants, 2 budgets, 3 deadlines, 2 application counts, 2 titles (so 2 relevance ranks); two
    are boosted."""
    tag = marker()
    rows = await pool.fetch(
        "INSERT INTO gigs (client_id, title, description, category, skills, budget_min, budget_max,"
        " deadline, created_at, applications_count, boosted_until)"
        " SELECT $1, CASE WHEN i % 2 = 0 THEN 'Logo for a shop' ELSE 'Poster with a logo' END,"
        "        'Work ' || i, 'design', ARRAY[$2, 'figma'], 1000 * (1 + i % 2), 5000 * (1 + i % 2),"
        "        date_trunc('hour', now()) + make_interval(days => 3 + i % 3),"
        "        date_trunc('hour', now()) - make_interval(mins => i % 3), i % 2,"
        "        CASE WHEN i % 5 = 0 THEN now() + interval '1 day' END"
        "   FROM generate_series(1, $3::int) AS i RETURNING id::text",
        owner.id,
        tag,
        GIGS,
    )
    return {"tag": tag, "ids": {r["id"] for r in rows}}


async def get(client: Any, path: str = "/api/gigs", headers: Any = None, **params: Any) -> dict[str, Any]:
    resp = await client.get(path, params=params, headers=headers)
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    return body


async def walk(client: Any, path: str = "/api/gigs", headers: Any = None, **params: Any) -> list[str]:
    """Every gig of `params` through nextCursor, 3 at a time, checking page numbers and totals."""
    seen: list[str] = []
    body = await get(client, path, headers, limit=3, **params)
    pages = 1
    while True:
        assert body["page"] == pages and body["totalIsEstimate"] is False
        seen += [g["id"] for g in body["data"]]
        if body["nextCursor"] is None:
            return seen
        assert len(body["data"]) == 3
        body = await get(client, path, headers, limit=3, cursor=body["nextCursor"], **params)
        pages += 1


SORTS = ["createdAt", "budgetMax", "budgetMin", "deadline", "applicationsCount", "relevance"]


@pytest.mark.parametrize("order", ["desc", "asc"])
@pytest.mark.parametrize("sort_by", SORTS)
async def test_cursor_walks_every_gig_once_in_page_order(
    client: Any, tied: dict[str, Any], sort_by: str, order: str
) -> None:
    params = {"skills": tied["tag"], "sortBy": sort_by, "sortOrder": order}
    if sort_by == "relevance":
        params["search"] = "logo"
    whole = await get(client, limit=100, **params)
    expected = [g["id"] for g in whole["data"]]
    assert set(expected) == tied["ids"] and whole["total"] == GIGS and whole["nextCursor"] is None
    assert await walk(client, **params) == expected
    # boosted first, both in page and cursor order
    assert [g["isBoosted"] for g in whole["data"]] == [True] * 2 + [False] * (GIGS - 2)


@pytest.mark.parametrize("sort_by", ["createdAt", "budgetMax", "deadline"])
async def test_my_gigs_cursor_walk(client: Any, owner: TestUser, tied: dict[str, Any], sort_by: str) -> None:
    mine = "/api/gigs/my-gigs"
    expected = [g["id"] for g in (await get(client, mine, owner.headers, limit=100, sortBy=sort_by))["data"]]
    assert set(expected) == tied["ids"]
    assert await walk(client, mine, owner.headers, sortBy=sort_by) == expected


async def test_a_page_answer_continues_by_cursor(client: Any, tied: dict[str, Any]) -> None:
    tag = tied["tag"]
    whole = [g["id"] for g in (await get(client, skills=tag, limit=100))["data"]]
    second = await get(client, skills=tag, limit=4, page=2)
    assert [g["id"] for g in second["data"]] == whole[4:8]
    third = await get(client, skills=tag, limit=4, cursor=second["nextCursor"])
    assert third["page"] == 3 and [g["id"] for g in third["data"]] == whole[8:12]


async def test_walk_is_pinned_to_its_start(client: Any, pool: asyncpg.Pool, tied: dict[str, Any]) -> None:
    """A boost that runs out during a walk moves no gig: the walk orders by the boosts of its start."""
    tag = tied["tag"]
    ends = await pool.fetchval(
        "UPDATE gigs SET boosted_until = now() + interval '1.5 seconds'"
        " WHERE skills @> $1 AND boosted_until IS NOT NULL RETURNING boosted_until",
        [tag],
    )
    first = await get(client, skills=tag, limit=3)
    assert [g["isBoosted"] for g in first["data"]] == [True, True, False]
    await asyncio.sleep(max(0.0, (ends - dt.datetime.now(dt.UTC)).total_seconds()) + 0.2)
    seen = [g["id"] for g in first["data"]]
    cursor = first["nextCursor"]
    while cursor is not None:
        body = await get(client, skills=tag, limit=3, cursor=cursor)
        assert not any(g["isBoosted"] for g in body["data"])  # the boosts are over now
        seen += [g["id"] for g in body["data"]]
        cursor = body["nextCursor"]
    assert sorted(seen) == sorted(tied["ids"]) and len(seen) == GIGS


async def test_bad_and_forged_cursors_are_400_naming_cursor(client: Any, tied: dict[str, Any]) -> None:
    tag = tied["tag"]
    good = (await get(client, skills=tag, limit=3))["nextCursor"]
    body, mac = good.split(".")
    now = dt.datetime.now(dt.UTC)
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    forged = CursorCodec("not the server's secret").encode(
        repr(("open", None, None, [tag], None, None, None, None, "createdAt", True)),
        "createdAt",
        Position(
            as_of=now,
            page=1,
            boosted=False,
            key=now,
            created_at=now,
            gig_id="00000000-0000-0000-0000-000000000000",
        ),
    )
    cases: list[dict[str, Any]] = [
        {"skills": tag, "cursor": "abc"},
        {"skills": tag, "cursor": ""},
        {"skills": tag, "cursor": flipped + "." + mac},
        {"skills": tag, "cursor": good + "x"},
        {"skills": tag, "cursor": forged},
        {"skills": tag, "cursor": good, "page": "2"},
        {"skills": tag, "cursor": good, "sortBy": "budgetMax"},  # another query's cursor
        {"skills": tag, "cursor": good, "sortOrder": "asc"},
        {"skills": tag + "x", "cursor": good},
        {"skills": tag, "cursor": good, "category": "design"},
    ]
    for params in cases:
        resp = await client.get("/api/gigs", params=params)
        answer = await resp.json()
        assert resp.status == 400, (params, answer)
        assert answer["error"]["details"]["parameter"] == "cursor", params
        assert "cursor" in answer["error"]["message"]
    # the same query with another limit continues fine
    assert (await get(client, skills=tag, limit=5, cursor=good))["page"] == 2


async def test_total_is_exact_up_to_the_bound_then_estimated(
    client: Any, tied: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = tied["tag"]
    exact = await get(client, skills=tag)
    assert (exact["total"], exact["totalIsEstimate"]) == (GIGS, False)
    monkeypatch.setattr(gig_query, "TOTAL_EXACT_UP_TO", GIGS // 2)
    bounded = await get(client, skills=tag, category="design")
    assert bounded["totalIsEstimate"] is True and bounded["total"] > GIGS // 2  # the planner's, at least 8
    assert len(bounded["data"]) == GIGS  # the page itself is never cut short
    # with search every match is ranked anyway, so the count stays exact
    searched = await get(client, skills=tag, search="logo")
    assert (searched["total"], searched["totalIsEstimate"]) == (GIGS, False)
    at_bound = await get(client, skills=tag, budgetMax=1000)  # the 7 gigs of budget 1000 to 5000
    assert (at_bound["total"], at_bound["totalIsEstimate"]) == (GIGS // 2, False)


def test_openapi_documents_cursor_and_estimate() -> None:
    operation = build_document()["paths"]["/api/gigs"]["get"]
    assert "cursor" in {p["name"] for p in operation["parameters"]}
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    properties = schema["properties"]
    assert {"total", "totalIsEstimate", "nextCursor"} <= set(properties)
    assert "estimate" in properties["totalIsEstimate"]["description"]
    assert "totalIsEstimate" in properties["total"]["description"]
