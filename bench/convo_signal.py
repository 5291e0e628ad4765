"""The cost of CONVERSATION_UPDATED on the sender's process (docs/protocol.md, Conversations).

Per stored chat message the hub publishes the CHAT_MESSAGE frame on `order:<id>` and, for
conversation lists, one CONVERSATION_UPDATED frame on each participant's `convo:<userId>`, all in
the background publisher's pipelines. This measures the process CPU (time.process_time, so the load
of other processes counts little) of building and publishing those frames in 256-command pipelines
against the Redis at REDIS_URL (default 127.0.0.1:6379): without the signal (1 PUBLISH a message)
and with it (3). The signal channels have no subscriber, as when nobody watches: Redis delivers
them to no process. Usage: .venv/bin/python -m bench.convo_signal [--messages 20000]"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from redis.asyncio import Redis

from hub.events import ChatMessage
from hub.frame import Frame
from hub.handlers import _activity

PIPELINE = 256


async def run(messages: int) -> dict[str, float]:
    r = Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379"))
    prefix = f"bench-convo-{uuid.uuid4().hex[:8]}:"
    m = ChatMessage(
        str(uuid.uuid4()), str(uuid.uuid4()), 17, str(uuid.uuid4()),
        "hello there, a typical chat message", [], "c-1", 1764758400000,
    )  # fmt: skip
    out: dict[str, float] = {}
    try:
        for rnd in range(2):
            for signals in (0, 2):
                per_pipe = PIPELINE // (1 + signals)
                cpu = time.process_time()
                for _ in range(0, messages, per_pipe):
                    async with r.pipeline(transaction=False) as pipe:
                        for _ in range(per_pipe):
                            pipe.publish(prefix + "order:x", Frame.encode("CHAT_MESSAGE", m).data)
                            if signals:
                                signal = Frame.encode("CONVERSATION_UPDATED", _activity(m)).data
                                pipe.publish(prefix + "convo:a", signal)
                                pipe.publish(prefix + "convo:b", signal)
                        await pipe.execute()
                us = (time.process_time() - cpu) / messages * 1e6
                out[f"round{rnd + 1}_signals{signals}_us_per_msg"] = round(us, 1)
                print(f"round {rnd + 1}, {signals} signals a message: {us:.1f} us CPU a message")
    finally:
        await r.aclose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    asyncio.run(run(args.messages))


if __name__ == "__main__":
    main()
