"""Reading gigs: the gig's JSON shape and schema, and the validated query of GET /api/gigs (filters,
full-text search over the generated `search` column, whitelisted sorts, pages or cursors). The SQL
that answers it is rest/gig_query.py."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, get_args

import msgspec
from aiohttp import web
from multidict import MultiMapping

from hub.model import EpochMs, Uuid, wire_value
from rest.api import Body, Wire
from rest.errors import ApiError

DEADLINE_WINDOWS = ("today", "this_week", "this_month")
# sortBy value -> column; only these ever reach the ORDER BY.
SORTS = {
    "createdAt": "created_at",
    "budgetMax": "budget_max",
    "budgetMin": "budget_min",
    "deadline": "deadline",
    "applicationsCount": "applications_count",
    "relevance": "rank",
}
MAX_LIMIT = 100
MAX_MONEY = 10**12  # ten billion rupees in paise: far above any gig, far below bigint
# Text PostgreSQL can store: no NUL characters.
STORABLE = re.compile(r"[^\x00]*", re.DOTALL)

# Every column of a gig but the tsvector, aliased g.
GIG_COLUMNS = (
    "g.id::text AS id, g.client_id::text AS client_id, g.title, g.description, g.category, g.skills,"
    " g.budget_type, g.budget_min, g.budget_max, g.currency, g.deadline, g.attachments, g.status,"
    " g.applications_count, g.views_count, g.boosted_until, g.created_at, g.updated_at,"
    " coalesce(g.boosted_until > now(), false) AS boosted_now"
)


def ms(value: dt.datetime | None) -> int | None:
    """A timestamp as epoch milliseconds (None stays None)."""
    return None if value is None else int(value.timestamp() * 1000)


Category = Literal[
    "design", "development", "writing", "marketing", "video", "music", "photography", "tutoring",
    "data_entry", "research", "translation", "other",
]  # fmt: skip
GigStatus = Literal["open", "closed", "in_progress", "completed", "cancelled"]
BudgetType = Literal["fixed", "hourly", "milestone"]
Paise = Annotated[int, msgspec.Meta(ge=1, le=MAX_MONEY, description="paise")]


_HTTPS = r"^https://[^\s/?#]+([/?#]\S*)?$"


class Attachment(Body, omit_defaults=True):
    """A file a gig links to: exactly one of `mediaId` (a gig_attachment the gig's owner uploaded
    with POST /api/media; mime and size are then the server's) and `url` (an https URL), with an
    optional name, type and size."""

    url: Annotated[str, msgspec.Meta(max_length=2048, pattern=r"^https://[^\s/?#]+([/?#]\S*)?$")] | None = (
        None
    )
    media_id: Uuid | None = None
    name: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    mime: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    size: Annotated[int, msgspec.Meta(ge=0)] | None = None

    def __post_init__(self) -> None:
        # ValueError: msgspec reports it as a ValidationError at this attachment's place in the list.
        if (self.url is None) == (self.media_id is None):
            raise ValueError("each attachment needs one of url (https) and mediaId")
        if self.media_id is not None:
            try:
                self.media_id = str(uuid.UUID(self.media_id))
            except ValueError:
                raise ValueError("mediaId must be a UUID") from None


class GigAttachment(Wire, omit_defaults=True):
    """A file a gig links to, as stored: an `url`, or the `mediaId` of an uploaded media (public:
    GET /api/media/{id} gives anyone a link to it), with name, mime and size when known."""

    url: str | None = None
    media_id: Uuid | None = None
    name: str | None = None
    mime: str | None = None
    size: Annotated[int, msgspec.Meta(ge=0)] | None = None


class Gig(Wire):
    """A gig as every route answers it (seeds/004 4.1, camelCase)."""

    id: Uuid
    client_id: Uuid
    title: str
    description: str
    category: Category
    skills: list[str]
    budget_type: BudgetType
    budget_min: Annotated[int, msgspec.Meta(description="paise")]
    budget_max: Annotated[int, msgspec.Meta(description="paise")]
    currency: Annotated[str, msgspec.Meta(pattern="^[A-Z]{3}$")]
    deadline: EpochMs
    attachments: list[GigAttachment]
    status: GigStatus
    applications_count: Annotated[int, msgspec.Meta(ge=0)]
    views_count: Annotated[int, msgspec.Meta(ge=0)]
    is_boosted: Annotated[bool, msgspec.Meta(description="true only while boostedUntil is in the future")]
    boosted_until: EpochMs | None
    created_at: EpochMs
    updated_at: EpochMs


CATEGORIES: tuple[str, ...] = get_args(Category)
STATUSES: tuple[str, ...] = get_args(GigStatus)
BUDGET_TYPES: tuple[str, ...] = get_args(BudgetType)


# (column, wire name) of each Gig field a column fills: what `load` works out per row and key with
# a regex, once (a list page renders up to 100 gigs).
_GIG_FIELDS = [(f.name, f.encode_name) for f in msgspec.structs.fields(Gig) if f.name != "is_boosted"]


def load_gig(row: Mapping[str, Any] | None) -> Gig:
    """The Gig of a row selected with GIG_COLUMNS (a row the caller knows exists: None is a bug);
    the same as rest.api.load(Gig, row, isBoosted=...)."""
    if row is None:
        raise LookupError("no gig row to render")
    data = {wire: wire_value(row[column]) for column, wire in _GIG_FIELDS}
    data["isBoosted"] = bool(row["boosted_now"])
    return msgspec.convert(data, Gig)


@dataclass
class GigQuery:
    """A validated GET /api/gigs query."""

    category: str | None = None
    skills: list[str] = field(default_factory=list)
    budget_min: int | None = None
    budget_max: int | None = None
    deadline_before: dt.datetime | None = None
    status: str = "open"
    sort_by: str = "createdAt"
    descending: bool = True
    page: int = 1
    limit: int = 20
    search: str | None = None
    client_id: str | None = None  # set by /my-gigs, never from the query string
    deadline: str | None = None  # as given: the window's end moves with the clock, the query does not
    cursor: str | None = None

    def scope(self) -> str:
        """What a cursor is bound to: every filter and the order (not the page or its size)."""
        return repr(
            (self.status, self.client_id, self.category, self.skills, self.budget_min, self.budget_max,
             self.deadline, self.search, self.sort_by, self.descending)
        )  # fmt: skip


def _bad(name: str, expected: str) -> ApiError:
    return ApiError("bad_request", f"Query parameter {name} must be {expected}.", details={"parameter": name})


def _int(query: MultiMapping[str], name: str, low: int, high: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not re.fullmatch(r"[0-9]{1,16}", raw.strip()):
        raise _bad(name, f"an integer from {low} to {high}")
    value = int(raw)
    if not low <= value <= high:
        raise _bad(name, f"an integer from {low} to {high}")
    return value


def deadline_bound(raw: str, now: dt.datetime) -> dt.datetime:
    """The exclusive end of a deadline window (UTC): today, this_week (ends Sunday night),
    this_month, or a date YYYY-MM-DD (that whole day included); ValueError when it is none of them."""
    today = dt.datetime(now.year, now.month, now.day, tzinfo=dt.UTC)
    if raw == "today":
        return today + dt.timedelta(days=1)
    if raw == "this_week":
        return today + dt.timedelta(days=7 - today.weekday())
    if raw == "this_month":
        return dt.datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=dt.UTC)
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise ValueError(raw)
    day = dt.date.fromisoformat(raw)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)


def parse_query(query: MultiMapping[str], *, default_status: str | None = "open") -> GigQuery:
    """Validate GET /api/gigs's parameters; ApiError bad_request naming the first bad one."""
    known = {
        "category", "skills", "budgetMin", "budgetMax", "deadline", "status", "sortBy", "sortOrder",
        "page", "limit", "search", "cursor",
    }  # fmt: skip
    for name in query:
        if name not in known:
            raise _bad(name, f"one of the known parameters ({', '.join(sorted(known))})")
    q = GigQuery()
    category = query.get("category")
    if category:
        if category not in CATEGORIES:
            raise _bad("category", f"one of {', '.join(CATEGORIES)}")
        q.category = category
    for raw in query.getall("skills", []):
        for part in raw.split(","):
            skill = part.strip().lower()
            if not skill:
                continue
            if len(skill) > 50 or not STORABLE.fullmatch(skill):
                raise _bad("skills", "a comma list of skills of at most 50 characters each")
            if skill not in q.skills:
                q.skills.append(skill)
    if len(q.skills) > 20:
        raise _bad("skills", "at most 20 skills")
    q.budget_min = _int(query, "budgetMin", 0, MAX_MONEY)
    q.budget_max = _int(query, "budgetMax", 0, MAX_MONEY)
    if q.budget_min is not None and q.budget_max is not None and q.budget_min > q.budget_max:
        raise _bad("budgetMax", "at least budgetMin")
    deadline = query.get("deadline")
    if deadline:
        try:
            q.deadline_before = deadline_bound(deadline, dt.datetime.now(dt.UTC))
        except (ValueError, OverflowError):  # 9999-12-31 has no next day
            raise _bad("deadline", "today, this_week, this_month or a date YYYY-MM-DD") from None
        q.deadline = deadline
    status = query.get("status")
    if status:
        if status not in STATUSES:
            raise _bad("status", f"one of {', '.join(STATUSES)}")
        q.status = status
    elif default_status is None:
        q.status = ""
    search = query.get("search", "").strip()
    if search:
        if len(search) > 200 or not STORABLE.fullmatch(search):
            raise _bad("search", "text of at most 200 characters")
        q.search = search
    sort_by = query.get("sortBy")
    if sort_by:
        if sort_by not in SORTS or (sort_by == "relevance" and q.search is None):
            allowed = [s for s in SORTS if s != "relevance" or q.search is not None]
            raise _bad("sortBy", f"one of {', '.join(allowed)}")
        q.sort_by = sort_by
    elif q.search is not None:
        q.sort_by = "relevance"
    order = query.get("sortOrder")
    if order:
        if order not in ("asc", "desc"):
            raise _bad("sortOrder", "asc or desc")
        q.descending = order == "desc"
    q.page = _int(query, "page", 1, 100_000) or 1
    q.limit = _int(query, "limit", 1, MAX_LIMIT) or 20
    cursor = query.get("cursor")
    if cursor is not None:
        if query.get("page") is not None:
            raise _bad("cursor", "given without page (a cursor continues where its page ended)")
        if not cursor:
            raise _bad("cursor", "a nextCursor of this same query")
        q.cursor = cursor
    return q


def list_parameters() -> list[dict[str, Any]]:
    """The OpenAPI parameters of GET /api/gigs (and /my-gigs)."""

    def param(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
        return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}

    return [
        param("category", {"type": "string", "enum": list(CATEGORIES)}, "only this category"),
        param(
            "skills",
            {"type": "array", "items": {"type": "string", "maxLength": 50}, "maxItems": 20},
            "gigs needing any of these skills; a comma list and/or repeated",
        ),
        param("budgetMin", {"type": "integer", "minimum": 0, "maximum": MAX_MONEY}, "budgetMax >= this"),
        param("budgetMax", {"type": "integer", "minimum": 0, "maximum": MAX_MONEY}, "budgetMin <= this"),
        param(
            "deadline",
            {"type": "string", "pattern": r"^(today|this_week|this_month|\d{4}-\d{2}-\d{2})$"},
            "deadline from now until the end (UTC) of today, this week, this month, or the given date",
        ),
        param("status", {"type": "string", "enum": list(STATUSES)}, "default open (my-gigs: any)"),
        param(
            "sortBy",
            {"type": "string", "enum": list(SORTS)},
            "default createdAt, or relevance when search is given (relevance needs search)",
        ),
        param("sortOrder", {"type": "string", "enum": ["asc", "desc"]}, "default desc"),
        param("page", {"type": "integer", "minimum": 1, "maximum": 100_000}, "from 1 (or use cursor)"),
        param(
            "cursor",
            {"type": "string", "maxLength": 700},
            "the nextCursor of the previous page (opaque; same filters and sort, any limit; not with page):"
            " keyset paging, as fast at any depth, each gig exactly once",
        ),
        param("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "default 20"),
        param(
            "search",
            {"type": "string", "maxLength": 200},
            "full-text search over title, skills and description (web search syntax)",
        ),
    ]


def list_query(request: web.Request, default_status: str | None = "open") -> GigQuery:
    """parse_query over the request's query string."""
    return parse_query(request.query, default_status=default_status)
