"""Hypothesis strategies for the hostile input classes of issue 13, in three forms: JSON values
(`values`), raw HTTP pieces (path segments, query strings, header values: bytes exactly as they go on
the wire) and raw bodies (bytes that orjson and json.dumps cannot produce: invalid UTF-8, duplicate
keys, 10,000-deep nesting, numbers no float or int64 holds).

A JSON value here may hold two things plain JSON encoders cannot write: `Lit` (JSON text inserted
as is, e.g. `1e309` or `-0`) and `Pairs` (an object whose keys may repeat). `encode` writes such a
value as JSON text; strings are written with ASCII escapes, so a lone surrogate goes out as the
valid JSON escape `\\ud800` (the input class "surrogates"), never as invalid UTF-8."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st


@dataclass(frozen=True)
class Lit:
    """JSON text inserted verbatim (numbers and tokens no Python value encodes to)."""

    text: str


@dataclass(frozen=True)
class Pairs:
    """A JSON object as a list of (key, value): keys may repeat, the last one usually wins."""

    items: tuple[tuple[str, Any], ...]


def encode(value: Any) -> str:
    """`value` as JSON text (Lit and Pairs included); strings ASCII-escaped, lone surrogates too."""
    if isinstance(value, Lit):
        return value.text
    if isinstance(value, Pairs):
        return "{" + ",".join(f"{json.dumps(k)}:{encode(v)}" for k, v in value.items) + "}"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{encode(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(encode(v) for v in value) + "]"
    return json.dumps(value)  # str (ASCII-escaped), int, float, bool, None


def as_text(value: Any) -> str:
    """A value as it would appear in a query string or header: strings as they are, others as JSON."""
    return value if isinstance(value, str) else encode(value)


# --- values: one strategy per class -------------------------------------------------------------

DATES = [
    "9999-12-31",
    "10000-01-01",
    "0001-01-01",
    "0000-00-00",
    "-0001-01-01",
    "2026-02-30",
    "2026-13-01",
    "2026-1-1",
    "9999-12-31T23:59:59.999999+14:00",
    "1970-01-01T00:00:00Z",
    "today",
    "this_week",
    "tomorrow",
    "infinity",
    "-infinity",
    "epoch",
]
out_of_range_dates = st.sampled_from(DATES) | st.dates().map(str)

NUMBER_TEXTS = [
    "1e309",
    "-1e309",
    "-0",
    "-0.0",
    "18446744073709551616",  # 2**64
    "-9223372036854775809",  # below int64
    "9007199254740993",  # 2**53 + 1
    "1" + "0" * 400,
    "0.1e-400",
    "1E+2",
    "5e-324",
]
# Python values that survive json.dumps; the rest go out as Lit text.
number_values = st.sampled_from(
    [0, -1, 2**31, 2**53, 2**63 - 1, -(2**63), 2**64, 10**30, -0.0, 1e308, 0.5, -1e-300]
)
numbers = number_values | st.sampled_from(NUMBER_TEXTS).map(Lit)
# Numbers as text, for query strings and headers (where everything is text).
NUMERIC_TEXTS = [
    *NUMBER_TEXTS,
    "NaN",
    "nan",
    "Infinity",
    "-inf",
    "0x10",
    "1_000",
    "١٢٣",
    "²",
    " 7 ",
    "+5",
    "1" * 5000,
]
nan_ish = st.sampled_from(["NaN", "nan", "Infinity", "-Infinity", "inf", "None", "null", "undefined"])

CONTROLS = "\x00\x01\x07\x08\x0b\x0c\x1b\x1f\x7f\x85\u2028\u2029\u202e\ufeff\ufffe"
controls = st.text(alphabet=st.sampled_from(CONTROLS) | st.characters(codec="ascii"), min_size=1, max_size=12)
nul_strings = st.sampled_from(["\x00", "a\x00b", "\x00" * 3, "abc\x00", "%00"])
lone_surrogates = st.sampled_from(["\ud800", "a\udfffb", "\udc80\udc80", "\ud83d"])  # halves of a pair

URLS = [
    "http://[::1",
    "https://[abc]/x",
    "http://[::1]:99999/",
    "http://[]/",
    "http://[fe80::1%25eth0]/",
    "https://a.example:-1/",
    "https://a.example:65536/",
    "https://a.example:0x50/",
    "https://a.example:/",
    "javascript:alert(1)",
    "data:text/html,<script>1</script>",
    "file:///etc/passwd",
    "ftp://a.example/f",
    "//a.example/f",
    "http://",
    "https:///path",
    "http://xn--/",
    "http://xn--zz-xxx.example/",
    "http://例え.テスト/ファイル",
    "http://a..b/",
    "http://999.999.999.999/",
    "http://%zz/",
    "http://a.example/%ff%00",
    "http://user:pass@[::1]:80/",
    "http://a.example\\@b.example/",
    "http://ex ample.com/",
    "https://a.example/" + "x" * 3000,
]
malformed_urls = st.sampled_from(URLS)

HUGE = 100_000
huge_strings = st.sampled_from(["x" * HUGE, "é" * 40_000, "\U0001f600" * 20_000, "a" * 4001, "a" * 65_537])
empty_strings = st.sampled_from(["", " ", "\t\n", "\u3000", "\u200b"])
wrong_types: st.SearchStrategy[Any] = st.sampled_from(
    [None, True, False, 0, 1.5, [], {}, [None], {"": None}, [[[]]], "1", "true", "null", "[]", "{}"]
)


def nested(depth: int) -> Any:
    """A value nested `depth` deep (lists within objects), built without recursion."""
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"a": value}
    return value


# Deeper values go as raw bodies (RAW_BODIES): the encoder here recurses.
deep_values = st.sampled_from([nested(64), nested(300)])
duplicate_key_objects = st.sampled_from(
    [Pairs((("a", 1), ("a", 2))), Pairs((("id", "x"), ("id", None))), Pairs((("", 1), ("", [])))]
)

# Strings that are hostile yet valid where text is free-form (so they get stored and echoed back):
# control and format characters without NUL, astral and combining characters, at the size limits.
storable_text = st.one_of(
    st.text(
        alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), min_size=1, max_size=40
    ),
    st.text(alphabet=st.sampled_from(CONTROLS[1:] + "a\u0301\U0001f600"), min_size=1, max_size=40),
    st.sampled_from(
        ["é" * 4000, "\U0001f600" * 4000, "a\u0301" * 2000, "\u202eevil", "\ufeff", "<script>1</script>"]
    ),
)

# Every hostile class as a value. `ids` is given by the tests: live ids, ids of deleted rows.
hostile_values: st.SearchStrategy[Any] = st.one_of(
    out_of_range_dates,
    numbers,
    nan_ish,
    controls,
    nul_strings,
    lone_surrogates,
    malformed_urls,
    huge_strings,
    empty_strings,
    wrong_types,
    deep_values,
    duplicate_key_objects,
    st.text(max_size=30),
)


def values(ids: Sequence[str]) -> st.SearchStrategy[Any]:
    """Hostile values, plus real ids (live rows, deleted rows) and garbled ones."""
    id_values = st.sampled_from(list(ids)) if ids else st.nothing()
    garbled = st.sampled_from(list(ids) or ["00000000-0000-0000-0000-000000000000"]).map(
        lambda i: i.upper() if i[:1].isalpha() else "{" + i + "}"
    )
    return st.one_of(hostile_values, id_values, garbled, st.uuids().map(str))


def body_objects(fields: Sequence[str], ids: Sequence[str]) -> st.SearchStrategy[Any]:
    """JSON objects of a route's own field names (so validation is passed field by field and values
    reach the handler), each hostile, with an unknown field now and then, or keys repeated."""
    names = st.sampled_from(list(fields)) if fields else st.text(max_size=8)
    name = names | st.sampled_from(["", "__proto__", "constructor", "x" * 300, "\x00", "\ud800"])
    pairs = st.lists(st.tuples(name, values(ids)), max_size=6)
    return st.one_of(
        pairs.map(dict),
        pairs.map(lambda p: Pairs(tuple(p) + tuple(p[:1]))),  # the first key again, last wins
        values(ids),  # not an object at all
    )


# --- raw HTTP pieces (bytes) --------------------------------------------------------------------

# Percent-encoded segments: %00, invalid UTF-8 (%ff, overlong %c0%80, a surrogate %ed%a0%80),
# broken escapes, traversal, encoded slashes.
PATH_SEGMENTS = [
    b"%00",
    b"a%00b",
    b"%ff",
    b"%fe%ff",
    b"%c0%80",
    b"%ed%a0%80",
    b"%e2%82",
    b"%",
    b"%zz",
    b"%2",
    b"..",
    b".",
    b"%2e%2e",
    b"%2f",
    b"a%2fb",
    b"%5c",
    b"%20",
    b"%0d%0a",
    b"%7b%7d",
    b"%3f",
    b"%23",
    b"~",
    b"null",
    b"undefined",
    b"-1",
    b"0",
    b"1e309",
    b"9999-12-31",
    b"x" * 2000,
]


def path_segments(ids: Sequence[str]) -> st.SearchStrategy[bytes]:
    """A path parameter as it goes on the wire: hostile encodings, hostile values percent-encoded
    (a lone surrogate as its invalid UTF-8 bytes, %ed%a0%80), live and deleted ids."""
    encoded = values(ids).map(lambda v: quote(as_text(v)[:3000], safe="", errors="surrogatepass").encode())
    return st.sampled_from(PATH_SEGMENTS) | encoded


def query_strings(names: Sequence[str], ids: Sequence[str]) -> st.SearchStrategy[bytes]:
    """A query string (without "?"): the route's own parameter names (and others, repeated ones,
    empty ones) with hostile values, percent-encoded or in broken encodings."""
    name = (st.sampled_from(list(names)) if names else st.nothing()) | st.sampled_from(
        ["", "x", "%00", "%ff"]
    )
    value = st.one_of(
        values(ids).map(lambda v: quote(as_text(v)[:3000], safe="", errors="surrogatepass")),
        st.sampled_from(NUMERIC_TEXTS).map(lambda t: quote(t, safe="")),
        st.sampled_from(
            ["%00", "%ff", "%c0%80", "%ed%a0%80", "%", "%zz", "a%2Cb%2C", ",,,", "[]", "a&b", "="]
        ),
    )
    pair = st.tuples(name.map(lambda n: n if n.startswith("%") or not n else quote(n)), value)
    return st.lists(pair, max_size=5).map(lambda ps: "&".join(f"{k}={v}" for k, v in ps).encode())


HEADER_NAMES = ["Authorization", "Idempotency-Key", "X-Request-Id", "Content-Type"]
# Header values as bytes: obs-text (invalid UTF-8 is legal in HTTP/1.1 header values), huge, empty.
RAW_HEADER_VALUES = [
    b"",
    b" ",
    b"\xff\xfe",
    b"\xc0\x80",
    b"\xed\xa0\x80",
    b"caf\xc3\xa9",
    b"x" * 7000,
    b"Bearer",
    b"Bearer ",
    b"Bearer \xff",
    b"Bearer a.b.c",
    b"Bearer " + b"A" * 7000,
    b"bearer null",
    b"Basic Zm9vOmJhcg==",
    b"application/json; charset=latin-1",
    b"application/json; charset=utf-16",
    b"text/plain",
    b"multipart/form-data; boundary=",
    b"application/x-www-form-urlencoded",
    b"application/json; charset=\xff",
    b"\t",
]


def header_values() -> st.SearchStrategy[bytes]:
    """A header value as bytes; never CR, LF or NUL raw (those end or break the header: see the raw
    request-line tests for what the HTTP parser does with them)."""
    from_values = hostile_values.map(
        lambda v: (
            as_text(v)[:7000]
            .replace("\r", "")
            .replace("\n", "")
            .replace("\x00", "")
            .encode("utf-8", "surrogatepass")
        )
    )
    return st.sampled_from(RAW_HEADER_VALUES) | from_values


def headers(base: dict[str, bytes]) -> st.SearchStrategy[dict[str, bytes]]:
    """`base` with some of Authorization, Idempotency-Key, X-Request-Id and Content-Type replaced
    by hostile values."""
    chosen = st.dictionaries(st.sampled_from(HEADER_NAMES), header_values(), max_size=3)
    return chosen.map(lambda h: {**base, **h})


# --- raw bodies (bytes) ---------------------------------------------------------------------------

DEEP = 10_000
RAW_BODIES = [
    b"",
    b"{",
    b"{}",
    b"[]",
    b"null",
    b"0",
    b'"x"',
    b"\xff\xfe{}",
    b'{"a":"\xff"}',
    b'{"a":"\xed\xa0\x80"}',  # an encoded surrogate: invalid UTF-8
    b'{"a":"\xc0\x80"}',
    b'{"a":"\\ud800"}',
    b'{"a":"\\u0000"}',
    b'{"a":1,"a":2}',
    b'{"a":NaN}',
    b'{"a":Infinity}',
    b'{"a":1e309}',
    b'{"a":-0}',
    b'{"a":18446744073709551616}',
    b'{"a":01}',
    b'{"a":1,}',
    b"\x00",
    b"\xef\xbb\xbf{}",  # a UTF-8 BOM
    b"[" * DEEP + b"]" * DEEP,
    b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    b'{"a":"' + b"x" * (1024 * 1024 + 1) + b'"}',  # over the 1 MiB body limit
    b'{"a":"' + b"x" * 200_000 + b'"}',
]


def bodies(fields: Sequence[str], ids: Sequence[str]) -> st.SearchStrategy[bytes]:
    """A request body: one of the raw hostile bodies, or a hostile object of the route's fields."""
    return st.sampled_from(RAW_BODIES) | body_objects(fields, ids).map(lambda v: encode(v).encode())
