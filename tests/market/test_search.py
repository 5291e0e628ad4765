"""GET /api/gigs: every filter, full-text search and relevance, sorts, pages, and bad parameters.
Each test tags its gigs with a skill of its own (`marker()`) so shared data does not leak in."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import pytest

from rest.gig_search import deadline_bound
from tests.factories import TestUser
from tests.market.conftest import create_gig, future_ms, marker

DEADLINE_DAYS = {"logo": 0.2, "site": 20, "essay": 40, "video": 100, "poster": 3}


async def ids(client: Any, **params: Any) -> list[str]:
    resp = await client.get("/api/gigs", params=params)
    body = await resp.json()
    assert resp.status == 200, body
    return [g["id"] for g in body["data"]]


@pytest.fixture
async def catalogue(client: Any, owner: TestUser) -> dict[str, Any]:
    """Five gigs of known fields, all tagged with one marker skill."""
    tag = marker()
    specs = {
        "logo": dict(title="Logo design for a startup", category="design", skills=[tag, "illustrator"],
                     budgetMin=50_000, budgetMax=100_000, deadline=future_ms(0.2),
                     description="Vector logo, two colours."),
        "site": dict(title="Build a portfolio website", category="development", skills=[tag, "react"],
                     budgetMin=200_000, budgetMax=500_000, deadline=future_ms(20),
                     description="A static site with a contact form; logo supplied."),
        "essay": dict(title="Proofread an essay", category="writing", skills=[tag, "english"],
                      budgetMin=10_000, budgetMax=20_000, deadline=future_ms(40),
                      description="Three thousand words on climate policy."),
        "video": dict(title="Edit a reel", category="video", skills=[tag, "premiere"],
                      budgetMin=30_000, budgetMax=60_000, deadline=future_ms(100),
                      description="Cut a one minute reel with captions."),
        "poster": dict(title="Poster and logo refresh", category="design", skills=[tag, "photoshop"],
                       budgetMin=40_000, budgetMax=80_000, deadline=future_ms(3),
                       description="Refresh the club poster."),
    }  # fmt: skip
    gigs = {name: await create_gig(client, owner, **spec) for name, spec in specs.items()}
    return {"tag": tag, **{name: g["id"] for name, g in gigs.items()}}


async def test_default_lists_open_gigs_newest_first(
    client: Any, pool: asyncpg.Pool, owner: TestUser, catalogue: dict[str, Any]
) -> None:
    tag = catalogue["tag"]
    got = await ids(client, skills=tag)
    assert got == [catalogue[n] for n in ("poster", "video", "essay", "site", "logo")]
    await client.post(f"/api/gigs/{catalogue['essay']}/close", headers=owner.headers)
    assert catalogue["essay"] not in await ids(client, skills=tag)
    assert await ids(client, skills=tag, status="closed") == [catalogue["essay"]]


async def test_filters(client: Any, catalogue: dict[str, Any]) -> None:
    c, tag = catalogue, catalogue["tag"]
    assert set(await ids(client, skills=tag, category="design")) == {c["logo"], c["poster"]}
    # skills: any of them, as a comma list and/or repeated
    assert set(await ids(client, skills=f"react,{tag}x,premiere")) >= {c["site"], c["video"]}
    both = f"/api/gigs?skills=react&skills=premiere,english&skills={tag}&category=writing"
    resp = await client.get(both)
    assert [g["id"] for g in (await resp.json())["data"]] == [c["essay"]]
    # budgets: gigs whose range reaches budgetMin and starts at or below budgetMax
    assert set(await ids(client, skills=tag, budgetMin=150_000)) == {c["site"]}
    assert set(await ids(client, skills=tag, budgetMax=35_000)) == {c["essay"], c["video"]}
    assert set(await ids(client, skills=tag, budgetMin=55_000, budgetMax=90_000)) == {
        c["logo"], c["poster"], c["video"],
    }  # fmt: skip
    # deadlines: the windows' expected members computed from the gigs' own deadlines
    now = dt.datetime.now(dt.UTC)
    for window in ("today", "this_week", "this_month"):
        end_ms = deadline_bound(window, now).timestamp() * 1000
        expected = {c[n] for n, days in DEADLINE_DAYS.items() if future_ms(days) < end_ms}
        assert set(await ids(client, skills=tag, deadline=window)) == expected, window
    in_50 = (dt.datetime.now(dt.UTC) + dt.timedelta(days=50)).date().isoformat()
    assert set(await ids(client, skills=tag, deadline=in_50)) == {
        c["logo"],
        c["poster"],
        c["site"],
        c["essay"],
    }
    past = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    assert await ids(client, skills=tag, deadline=past) == []


def test_deadline_windows() -> None:
    wednesday = dt.datetime(2025, 1, 15, 13, 30, tzinfo=dt.UTC)
    assert deadline_bound("today", wednesday) == dt.datetime(2025, 1, 16, tzinfo=dt.UTC)
    assert deadline_bound("this_week", wednesday) == dt.datetime(2025, 1, 20, tzinfo=dt.UTC)  # Monday 00:00
    assert deadline_bound("this_month", wednesday) == dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    december = dt.datetime(2025, 12, 31, 23, 0, tzinfo=dt.UTC)
    assert deadline_bound("this_month", december) == dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert deadline_bound("2025-03-01", wednesday) == dt.datetime(2025, 3, 2, tzinfo=dt.UTC)
    for bad in ("tomorrow", "2025-02-30", "2025-1-1", ""):
        with pytest.raises(ValueError):
            deadline_bound(bad, wednesday)


async def test_full_text_search_and_relevance(client: Any, catalogue: dict[str, Any]) -> None:
    c, tag = catalogue, catalogue["tag"]
    # "logo" is in two titles (weight A) and one description (weight C)
    found = await ids(client, skills=tag, search="logo")
    assert set(found) == {c["logo"], c["poster"], c["site"]}
    assert found[-1] == c["site"]  # the description-only match ranks last
    assert await ids(client, skills=tag, search="logos") == found  # English stemming
    assert set(await ids(client, skills=tag, search="logo -poster")) == {c["logo"], c["site"]}
    assert await ids(client, skills=tag, search='"climate policy"') == [c["essay"]]
    assert await ids(client, skills=tag, search="premiere") == [c["video"]]  # skills are searched
    assert await ids(client, skills=tag, search="the") == []  # only a stop word: matches nothing
    # relevance ascending reverses the order; other sorts apply to the matches
    assert (await ids(client, skills=tag, search="logo", sortOrder="asc"))[0] == c["site"]
    by_budget = await ids(client, skills=tag, search="logo", sortBy="budgetMax")
    assert by_budget == [c["site"], c["logo"], c["poster"]]


@pytest.mark.parametrize(
    ("sort_by", "order", "expected"),
    [
        ("budgetMax", "desc", ["site", "logo", "poster", "video", "essay"]),
        ("budgetMin", "asc", ["essay", "video", "poster", "logo", "site"]),
        ("deadline", "asc", ["logo", "poster", "site", "essay", "video"]),
        ("createdAt", "asc", ["logo", "site", "essay", "video", "poster"]),
    ],
)
async def test_sorts(
    client: Any, catalogue: dict[str, Any], sort_by: str, order: str, expected: list[str]
) -> None:
    got = await ids(client, skills=catalogue["tag"], sortBy=sort_by, sortOrder=order)
    assert got == [catalogue[n] for n in expected]


async def test_sort_by_applications_count(client: Any, pool: asyncpg.Pool, catalogue: dict[str, Any]) -> None:
    await pool.execute("UPDATE gigs SET applications_count = 7 WHERE id = $1", catalogue["essay"])
    await pool.execute("UPDATE gigs SET applications_count = 3 WHERE id = $1", catalogue["video"])
    got = await ids(client, skills=catalogue["tag"], sortBy="applicationsCount")
    assert got[:2] == [catalogue["essay"], catalogue["video"]]


async def test_paging(client: Any, catalogue: dict[str, Any]) -> None:
    tag = catalogue["tag"]
    everything = await ids(client, skills=tag)
    seen: list[str] = []
    for page in (1, 2, 3):
        resp = await client.get("/api/gigs", params={"skills": tag, "limit": 2, "page": page})
        body = await resp.json()
        assert (body["page"], body["limit"], body["total"]) == (page, 2, 5)
        seen += [g["id"] for g in body["data"]]
    assert seen == everything
    resp = await client.get("/api/gigs", params={"skills": tag, "page": 9})
    body = await resp.json()
    assert body["data"] == [] and body["total"] == 5


async def test_boosted_gigs_come_first_while_boosted(
    client: Any, pool: asyncpg.Pool, catalogue: dict[str, Any]
) -> None:
    c, tag = catalogue, catalogue["tag"]
    await pool.execute("UPDATE gigs SET boosted_until = now() + interval '1 day' WHERE id = $1", c["essay"])
    await pool.execute("UPDATE gigs SET boosted_until = now() - interval '1 second' WHERE id = $1", c["site"])
    resp = await client.get("/api/gigs", params={"skills": tag, "sortBy": "budgetMax"})
    data = (await resp.json())["data"]
    assert [g["id"] for g in data][:2] == [c["essay"], c["site"]]  # essay boosted; then by budget
    assert data[0]["isBoosted"] is True and data[0]["boostedUntil"] > future_ms(0.9)
    assert data[1]["isBoosted"] is False  # its boost is over


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"category": "astrology"}, "category"),
        ({"skills": "x" * 51}, "skills"),
        ({"skills": ",".join(f"s{i}" for i in range(21))}, "skills"),
        ({"budgetMin": "-1"}, "budgetMin"),
        ({"budgetMin": "ten"}, "budgetMin"),
        ({"budgetMax": "1.5"}, "budgetMax"),
        ({"budgetMin": "500", "budgetMax": "100"}, "budgetMax"),
        ({"deadline": "next_year"}, "deadline"),
        ({"deadline": "2025-02-30"}, "deadline"),
        ({"status": "lost"}, "status"),
        ({"sortBy": "title"}, "sortBy"),
        ({"sortBy": "relevance"}, "sortBy"),
        ({"sortOrder": "up"}, "sortOrder"),
        ({"page": "0"}, "page"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"search": "x" * 201}, "search"),
        ({"search": "a\u0000b"}, "search"),
        ({"colour": "red"}, "colour"),
    ],
)
async def test_bad_parameters_are_400_naming_the_parameter(
    client: Any, params: dict[str, str], name: str
) -> None:
    resp = await client.get("/api/gigs", params=params)
    body = await resp.json()
    assert resp.status == 400, body
    assert body["error"]["details"]["parameter"] == name
    assert name in body["error"]["message"]


async def test_limit_default_and_max(client: Any) -> None:
    resp = await client.get("/api/gigs")
    assert (await resp.json())["limit"] == 20
    resp = await client.get("/api/gigs", params={"limit": "100"})
    assert resp.status == 200


async def test_paging_with_boosted_gigs(client: Any, pool: asyncpg.Pool, catalogue: dict[str, Any]) -> None:
    c, tag = catalogue, catalogue["tag"]
    for name in ("essay", "logo"):
        await pool.execute("UPDATE gigs SET boosted_until = now() + interval '1 hour' WHERE id = $1", c[name])
    seen: list[str] = []
    for page in (1, 2, 3):
        resp = await client.get("/api/gigs", params={"skills": tag, "limit": 2, "page": page})
        seen += [g["id"] for g in (await resp.json())["data"]]
    # boosted first (newest first among them), then the rest newest first, each exactly once
    assert seen == [c[n] for n in ("essay", "logo", "poster", "video", "site")]
