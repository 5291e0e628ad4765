"""Thousands of malformed frames: each gets an ERROR (or the documented 1009 close for a frame over
64 KiB), never an internal error or a crash, and other sessions keep chatting meanwhile."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.codes import ERROR_CODES
from hub.protocol import CLIENT_TYPES
from tests.hub.conftest import Conn, Node, NodeFactory, Pair

ints = st.integers(-(2**53), 2**60)  # orjson encodes 64-bit integers
json_values = st.recursive(
    st.none() | st.booleans() | ints | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=12,
)
# "@ORDER@" becomes the real order's id when sent, so valid-looking frames reach the database.
ids = st.uuids().map(str) | st.just("@ORDER@") | st.text(max_size=40) | ints | st.none()
event_data = st.fixed_dictionaries(
    {},
    optional={
        "orderId": ids,
        "messageId": ids,
        "text": st.text(max_size=60) | ints | st.just("x" * 4001),
        "attachments": st.lists(
            st.fixed_dictionaries(
                {}, optional={"url": st.text(max_size=30) | st.just("https://a.example/f")}
            ),
            max_size=12,
        )
        | json_values,
        "sinceSeq": st.integers(-5, 2**60) | st.text(max_size=5) | st.booleans(),
        "clientMsgId": st.text(max_size=70) | ints,
    },
)
# AUTHENTICATE is left out: a bad token closes the connection by design (4401), tested elsewhere.
types = st.sampled_from(sorted(CLIENT_TYPES - {"AUTHENTICATE"})) | st.text(max_size=20) | json_values
frames = st.fixed_dictionaries(
    {},
    optional={"type": types, "data": event_data | json_values, "ref": st.text(max_size=70) | ints},
)
payloads = st.one_of(
    frames.map(lambda f: ("text", orjson.dumps(f).decode())),
    json_values.map(lambda v: ("text", orjson.dumps(v).decode())),
    st.text(max_size=200).map(lambda t: ("text", t)),
    st.binary(max_size=200).map(lambda b: ("binary", b)),
)
# A few frames just under and over the 64 KiB limit.
payloads = payloads | st.integers(60_000, 70_000).map(
    lambda n: ("text", '{"type":"PING","data":{"x":"' + "a" * n + '"}}')
)


def draw_payloads(count: int) -> list[tuple[str, Any]]:
    """`count` payloads drawn by hypothesis, in batches (generation costs more per example than per item)."""
    found: list[tuple[str, Any]] = []

    @settings(max_examples=count // 8, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(payloads, min_size=8, max_size=8))
    def collect(batch: list[tuple[str, Any]]) -> None:
        found.extend(batch)

    collect()
    return found


async def test_malformed_frames_never_break_the_hub(make_node: NodeFactory, pair: Pair) -> None:
    node: Node = await make_node(
        chat_rate_per_s=1000.0, chat_burst=1000, event_rate_per_s=10_000.0, event_burst=10_000
    )
    samples = draw_payloads(2400)
    assert len(samples) > 1000
    a = await node.connect(pair.client, subscribe=pair.order_id)
    b = await node.connect(pair.doer, subscribe=pair.order_id)
    fuzz = await node.connect(pair.client)
    chatted = 0
    closes = 0
    for i, (kind, payload) in enumerate(samples):
        too_big = kind == "text" and len(payload.encode()) > 65536
        if kind == "text":
            await fuzz.ws.send_str(payload.replace("@ORDER@", pair.order_id))
        else:
            await fuzz.ws.send_bytes(payload)
        if too_big:
            assert await fuzz.closed() == 1009
            closes += 1
            fuzz = await node.connect(pair.client)
            continue
        # The sentinel PING is answered after everything the fuzz frame caused (frames run in order).
        await fuzz.send("PING", ref=f"sentinel-{i}")
        answers: list[dict[str, Any]] = []
        while (frame := await fuzz.next()) != {"type": "PONG", "ref": f"sentinel-{i}"}:
            answers.append(frame)
        for frame in answers:
            if frame["type"] == "ERROR":
                assert frame["data"]["code"] in ERROR_CODES - {"internal"}, (payload[:200], frame)
            else:
                # CONVERSATION_UPDATED: a fuzzed WATCH_CONVERSATIONS, then a message in a chat not subscribed.
                kinds = ("ACK", "PONG", "CHAT_MESSAGE", "TYPING_START", "TYPING_STOP", "CONVERSATION_UPDATED")
                assert frame["type"] in kinds, frame
        if i % 300 == 0:  # the other sessions keep working throughout
            await a.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": f"still here {i}"})
            await b.expect("CHAT_MESSAGE")
            chatted += 1
    assert chatted >= 4
    await asyncio.sleep(0)
    resp = await node.client.get("/healthz")
    assert resp.status == 200
    _ = (Conn, closes)
