"""CPU a process spends receiving one chat-sized message from Redis pub/sub, as a hub does.

A publisher process sends MESSAGES pipelined to 50 channels; this process reads them with the
hub's loop (hub/broker_pubsub.py: `PubSub.get_message(timeout=1.0)` per message) and prints its
own CPU time per message, so the figure holds on a loaded machine. Whether redis-py parses with
hiredis (C) or its Python parser is printed with it:

    .venv/bin/python -m bench.pubsub_receive [--redis redis://127.0.0.1:6379] [--messages 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import redis.asyncio as redis
from redis.utils import HIREDIS_AVAILABLE

PAYLOAD = (
    b'{"type":"CHAT_MESSAGE","data":{"id":"0190b5a4-1f2e-7c3d-9a8b-123456789abc",'
    b'"orderId":"5f1c2d3e-4b5a-6978-8a9b-0c1d2e3f4a5b","seq":123,'
    b'"senderId":"1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809","text":"a typical short chat message, about forty",'
    b'"attachments":[],"clientMsgId":"c1","createdAt":1764763200000}}'
)
CHANNELS = [f"gigwire-bench:order:{i}" for i in range(50)]


async def publish(url: str, count: int) -> None:
    client = redis.Redis.from_url(url)
    await asyncio.sleep(0.5)  # the subscriber subscribes meanwhile
    for start in range(0, count, 500):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(count, start + 500)):
            pipe.publish(CHANNELS[i % len(CHANNELS)], PAYLOAD)
        await pipe.execute()
    await client.aclose()


async def receive(url: str, count: int) -> None:
    client = redis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(*CHANNELS)
    got, cpu0 = 0, 0.0
    while got < count:
        message = await pubsub.get_message(timeout=1.0)
        if message is not None and message["type"] == "message":
            got += 1
            if got == 1:
                cpu0 = time.process_time()
    cpu = time.process_time() - cpu0
    print(f"hiredis {HIREDIS_AVAILABLE}: {cpu / max(1, count - 1) * 1e6:.1f} us of CPU per message received")
    await pubsub.aclose()
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379")
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        asyncio.run(publish(args.redis, args.messages))
        return
    cmd = [sys.executable, "-m", "bench.pubsub_receive", "--publish", "--redis", args.redis]
    publisher = subprocess.Popen([*cmd, "--messages", str(args.messages)])
    asyncio.run(receive(args.redis, args.messages))
    publisher.wait()


if __name__ == "__main__":
    main()
