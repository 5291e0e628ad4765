"""Per-frame costs of the realtime hot path, one process: parse a client CHAT_MESSAGE and
SUBSCRIBE_CHAT (`hub.protocol.parse`), encode a server CHAT_MESSAGE from a stored row
(`hub.chat.message_frame`), and what each process does per delivered broker message
(`Frame(bytes).type` and the payload's `seq`).

    .venv/bin/python bench/frames.py                           # this checkout
    /path/to/other/.venv/bin/python bench/frames.py            # another checkout's hub

It imports `hub` from the interpreter's environment (the checkout its .venv installed), so one
script measures any version; it uses only names both sides of the issue-11 refactor have
(`hub.protocol.parse`, `hub.chat.message_frame`, `hub.frame.Frame`). Each figure is the best of
`--repeat` timeit runs of `--number` calls, in nanoseconds per call, timed twice: in CPU time of
this process (`time.process_time`: what a call costs, whatever else the machine runs) and in wall
clock (which also counts the time the process waited for a core)."""

from __future__ import annotations

import argparse
import os
import statistics
import time
import timeit
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from hub.chat import message_frame
from hub.frame import Frame
from hub.protocol import parse

ORDER = str(uuid.uuid4())
CHAT_IN = orjson.dumps(
    {
        "type": "CHAT_MESSAGE",
        "data": {
            "orderId": ORDER,
            "text": "Hi! I pushed the revised logo, see attached",
            "clientMsgId": "c-1",
        },
        "ref": "r1",
    }
).decode()
CHAT_IN_ATTACHMENT = orjson.dumps(
    {
        "type": "CHAT_MESSAGE",
        "data": {
            "orderId": ORDER,
            "text": "Revised logo",
            "attachments": [{"url": "https://cdn.example.com/a/logo-v2.png", "name": "logo-v2.png"}],
        },
        "ref": "r2",
    }
).decode()
SUBSCRIBE_IN = orjson.dumps(
    {"type": "SUBSCRIBE_CHAT", "data": {"orderId": ORDER, "sinceSeq": 41}, "ref": "s1"}
).decode()


def row(attachments: list[dict[str, Any]]) -> dict[str, Any]:
    """A stored message as `hub.chat`'s queries return it (ids as text, createdAt in epoch ms)."""
    return {
        "id": str(uuid.uuid4()),
        "order_id": ORDER,
        "seq": 42,
        "sender_id": str(uuid.uuid4()),
        "text": "Hi! I pushed the revised logo, see attached",
        "attachments": attachments,
        "client_msg_id": "c-1",
        "created_at": 1_796_000_000_000,
    }


ROW = row([])
ROW_ATTACHMENT = row([{"url": "https://cdn.example.com/a/logo-v2.png", "name": "logo-v2.png"}])
DELIVERED = message_frame(ROW).data


def deliver() -> int:
    """What a process does per broker message of an order's chat: type from the prefix, seq parsed."""
    frame = Frame(DELIVERED)
    assert frame.type == "CHAT_MESSAGE"
    return int(frame.payload["seq"])


CASES: list[tuple[str, Callable[[], object]]] = [
    ("parse client CHAT_MESSAGE (text, clientMsgId)", lambda: parse(CHAT_IN)),
    ("parse client CHAT_MESSAGE (one attachment)", lambda: parse(CHAT_IN_ATTACHMENT)),
    ("parse client SUBSCRIBE_CHAT", lambda: parse(SUBSCRIBE_IN)),
    ("encode server CHAT_MESSAGE from a row", lambda: message_frame(ROW).data),
    ("encode server CHAT_MESSAGE from a row (one attachment)", lambda: message_frame(ROW_ATTACHMENT).data),
    ("delivery: Frame(bytes).type + payload seq", deliver),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--number", type=int, default=20_000, help="calls per timeit run")
    parser.add_argument("--repeat", type=int, default=5, help="timeit runs per case (best and median)")
    args = parser.parse_args()
    import hub  # the checkout measured

    print(f"hub from {os.path.dirname(hub.__file__)}; load average {os.getloadavg()[0]:.2f}")
    print(f"delivered frame: {len(DELIVERED)} bytes")
    print("| case | CPU ns/call, best | CPU ns/call, median | wall ns/call, best |")
    print("|---|---:|---:|---:|")
    per_call = 1e9 / args.number
    for name, call in CASES:
        call()  # warm (lazily built decoders, caches)
        cpu = timeit.repeat(call, timer=time.process_time, number=args.number, repeat=args.repeat)
        wall = timeit.repeat(call, timer=time.perf_counter, number=args.number, repeat=args.repeat)
        print(
            f"| {name} | {min(cpu) * per_call:,.0f} | {statistics.median(cpu) * per_call:,.0f}"
            f" | {min(wall) * per_call:,.0f} |"
        )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
