"""The SQL behind GET /api/gigs and /my-gigs: one statement per page that finds the page's gigs and
their count, by `page` (offset) or by keyset `cursor`.

Order: gigs boosted at the walk's instant first, then the sort key, created_at and id (a total
order, so pages neither repeat nor skip a gig). Two plans, chosen by the query:

- without `search` (lists): the boosted (few, from gigs_boosted_list_idx) and the other gigs (in
  index order for createdAt, from gigs_list_idx) are each cut to the page's depth and only those rows
  merged; both halves read ids and sort keys from the indexes alone (index-only scans: a deep page
  reads index entries, not rows) and the table is read for the page's gigs only. The count stops at
  TOTAL_EXACT_UP_TO + 1 matches; beyond it `total` is the planner's estimate, flagged.
- with `search`: relevance needs every match's rank anyway, so the matches (GIN on `search`) are
  ranked once into a small set of (id, key, boosted), counted exactly from it and cut to the page.

Both plans read only the page's rows from the table, in one round trip."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from rest.gig_cursor import CursorCodec, Position
from rest.gig_search import GIG_COLUMNS, SORTS, STATUSES, Gig, GigQuery, load_gig

if TYPE_CHECKING:
    from hub.db import Conn

TOTAL_EXACT_UP_TO = 500
"""Lists count their matches exactly up to this many; above it `total` is estimated."""

ESTIMATE_TTL_S = 60.0
_ESTIMATES_KEPT = 1024
_estimates: dict[tuple[str, str], tuple[float, int]] = {}

_PARAM_TYPES = {
    "created_at": "timestamptz",
    "deadline": "timestamptz",
    "budget_max": "bigint",
    "budget_min": "bigint",
    "applications_count": "integer",
    "rank": "real",
}


@dataclass(frozen=True)
class GigPage:
    """One page of a gig list: `total` is exact unless `total_is_estimate`; `next_cursor` is None
    on the last page."""

    items: list[Gig]
    page: int
    total: int
    total_is_estimate: bool
    next_cursor: str | None


class _Args:
    """Positional SQL arguments: `add` returns the placeholder of a value."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{'::' + cast if cast else ''}"


def _where(q: GigQuery, args: _Args) -> tuple[str, str, str]:
    """The FROM, the WHERE clause of `q`'s filters and the rank expression ("0::real" without
    search)."""
    where: list[str] = []
    if q.status:
        # A literal (one of STATUSES, validated), so that every plan, generic ones too, can use the
        # partial index of open gigs' search.
        assert q.status in STATUSES, q.status
        where.append(f"g.status = '{q.status}'")
    if q.client_id is not None:
        where.append(f"g.client_id = {args.add(q.client_id)}")
    else:  # a gig hidden by an admin (0019_admin.sql) is listed to its owner only (/my-gigs)
        where.append("g.hidden_at IS NULL")
    if q.category is not None:
        where.append(f"g.category = {args.add(q.category)}")
    if q.skills:
        where.append(f"g.skills && {args.add(q.skills, 'text[]')}")  # any of them (GIN, or INCLUDE)
    if q.budget_min is not None:
        where.append(f"g.budget_max >= {args.add(q.budget_min)}")
    if q.budget_max is not None:
        where.append(f"g.budget_min <= {args.add(q.budget_max)}")
    if q.deadline_before is not None:
        where.append(f"g.deadline >= now() AND g.deadline < {args.add(q.deadline_before)}")
    source, rank = "gigs g", "0::real"
    if q.search is not None:
        # The text parsed once, in FROM. Inline, websearch_to_tsquery($n) is called per row in the
        # generic plan PostgreSQL keeps for a prepared statement after five runs: the recheck and
        # the rank of every candidate parse the text again (4-5x the time of a phrase search).
        source = f"websearch_to_tsquery('english', {args.add(q.search)}) AS tsq (q) CROSS JOIN gigs g"
        where.append("g.search @@ tsq.q")
        rank = "ts_rank(g.search, tsq.q)"
    return source, " AND ".join(where) or "true", rank


def _after(cols: list[str], at: Position, sort_by: str, op: str, args: _Args) -> str:
    """`(cols) op (position's values)`: the rows after `at` in one direction (a row comparison,
    which a btree walks as an index condition)."""
    column = SORTS[sort_by]
    values = [args.add(at.created_at, "timestamptz"), args.add(at.gig_id, "uuid")]
    if sort_by != "createdAt":
        values.insert(0, args.add(at.key, _PARAM_TYPES[column]))
    return f"({', '.join(cols)}) {op} ({', '.join(values)})"


async def search_gigs(conn: Conn, q: GigQuery, codec: CursorCodec) -> GigPage:
    """One page of gigs matching `q` (by q.cursor when given, else q.page) and the count of all
    matches. ApiError bad_request naming `cursor` for a cursor this query did not issue."""
    at = codec.decode(q.scope(), q.sort_by, q.cursor) if q.cursor is not None else None
    args = _Args()
    source, clause, rank = _where(q, args)
    clause_args = len(args.values)
    as_of = f"coalesce({args.add(at.as_of if at else None, 'timestamptz')}, now())"
    d = "DESC" if q.descending else "ASC"
    op = "<" if q.descending else ">"
    page = at.page + 1 if at else q.page
    offset = 0 if at else (q.page - 1) * q.limit
    fetch = q.limit + 1  # one more than the page tells whether a next page exists
    column = SORTS[q.sort_by]

    def keys(prefix: str, key: str) -> list[str]:
        """The order's columns: createdAt's key is created_at itself."""
        tail = [f"{prefix}created_at", f"{prefix}id"]
        return tail if q.sort_by == "createdAt" else [key, *tail]

    def order(cols: list[str]) -> str:
        return ", ".join(f"{c} {d}" for c in cols)

    if q.search is None:
        key = f"g.{column}"
        cols = keys("g.", key)
        depth = args.add(offset + fetch)
        # After a boosted gig come the rest of the boosted half, then every other gig; after an
        # unboosted one, the rest of the unboosted half only.
        halves = []
        boosted = f"g.boosted_until > {as_of}"
        if at is None or at.boosted:
            after = f" AND {_after(cols, at, q.sort_by, op, args)}" if at else ""
            halves.append(
                f"(SELECT g.id, g.created_at, {key} AS k, true AS b FROM gigs g"
                f" WHERE {clause} AND {boosted}{after} ORDER BY {order(cols)} LIMIT {depth})"
            )
        after = f" AND {_after(cols, at, q.sort_by, op, args)}" if at and not at.boosted else ""
        halves.append(
            f"(SELECT g.id, g.created_at, {key} AS k, false AS b FROM gigs g"
            f" WHERE {clause} AND (g.boosted_until IS NULL OR g.boosted_until <= {as_of}){after}"
            f" ORDER BY {order(cols)} LIMIT {depth})"
        )
        page_sql = (
            f"SELECT * FROM ({' UNION ALL '.join(halves)}) AS u"
            f" ORDER BY b DESC, {order(keys('', 'k'))} LIMIT {args.add(fetch)} OFFSET {args.add(offset)}"
        )
        # In index order: the first matches of gigs_list_idx (or gigs_client_idx), read from the
        # index alone, rather than every match of a bitmap or the table's first pages.
        count_sql = (
            f"SELECT count(*) AS n FROM (SELECT 1 FROM gigs g WHERE {clause}"
            f" ORDER BY g.created_at DESC, g.id DESC LIMIT {TOTAL_EXACT_UP_TO + 1}) AS c"
        )
        ctes = f"p AS ({page_sql}), t AS ({count_sql})"
    else:
        key = rank if q.sort_by == "relevance" else f"g.{column}"
        after = ""
        if at is not None:
            past = _after(keys("m.", "m.k"), at, q.sort_by, op, args)
            after = f" WHERE (m.b AND {past}) OR NOT m.b" if at.boosted else f" WHERE NOT m.b AND {past}"
        ctes = (
            f"m AS MATERIALIZED (SELECT g.id, g.created_at, {key} AS k,"
            f" coalesce(g.boosted_until > {as_of}, false) AS b FROM {source} WHERE {clause}),"
            f" t AS (SELECT count(*) AS n FROM m),"
            f" p AS (SELECT * FROM m{after} ORDER BY m.b DESC, {order(keys('m.', 'm.k'))}"
            f" LIMIT {args.add(fetch)} OFFSET {args.add(offset)})"
        )
    rows = await conn.fetch(
        f"WITH {ctes} SELECT t.n AS total_count, {as_of} AS as_of, p.k AS sort_key,"
        f" p.b AS boosted_in_walk, {GIG_COLUMNS}"
        f" FROM t LEFT JOIN (p JOIN gigs g ON g.id = p.id) ON true"
        f" ORDER BY p.b DESC, {order(keys('p.', 'p.k'))}",
        *args.values,
    )
    found = [r for r in rows if r["id"] is not None]
    total = rows[0]["total_count"] if rows else 0
    estimate = q.search is None and total > TOTAL_EXACT_UP_TO
    if estimate:
        total = max(total, await _estimate(conn, clause, args.values[:clause_args]))
    next_cursor = None
    if len(found) > q.limit:
        last = found[q.limit - 1]
        position = Position(
            as_of=last["as_of"],
            page=page,
            boosted=last["boosted_in_walk"],
            key=last["sort_key"],
            created_at=last["created_at"],
            gig_id=last["id"],
        )
        next_cursor = codec.encode(q.scope(), q.sort_by, position)
    return GigPage([load_gig(r) for r in found[: q.limit]], page, total, estimate, next_cursor)


async def _estimate(conn: Conn, clause: str, args: list[Any]) -> int:
    """The planner's estimate of the rows matching `clause` (from the table's statistics), kept
    ESTIMATE_TTL_S per process: an estimate, so a minute old is as good, and the front page's list
    then costs one round trip, not two."""
    key = (clause, repr(args))
    now = time.monotonic()
    kept = _estimates.get(key)
    if kept is not None and kept[0] > now:
        return kept[1]
    plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM gigs g WHERE {clause}", *args)
    if isinstance(plan, str):
        plan = orjson.loads(plan)
    if not isinstance(plan, list) or not plan:  # not a plan (a stand-in connection): no estimate
        return 0
    rows = int(plan[0]["Plan"]["Plan Rows"])
    if len(_estimates) >= _ESTIMATES_KEPT:
        _estimates.clear()  # crude, and rare: distinct big lists within a minute
    _estimates[key] = (now + ESTIMATE_TTL_S, rows)
    return rows
