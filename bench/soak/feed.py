"""The soak's feed traffic: NOTIFICATIONs published through the server API (`POST
/api/server/publish`, an API key with the `publish` scope) to the pairs' users all through the
faults, and what each user's one connection must hold at the end: every published notification
exactly once, its feedSeqs 1..n without a gap. Sides resume with `sinceFeedSeq` (the last feedSeq
up to which they hold every event) on every reconnect, as docs/protocol.md tells clients to.

`FeedSide` is the part of a soak side (bench/soak/load.py) that reads the feed; `publish_loop` and
`feed_figures` are the load process's part."""

from __future__ import annotations

import asyncio
import collections
import random
from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp

# The events of a user's feed, each with its feedSeq (docs/protocol.md, "The user's feed"); a
# NOTIFICATION may also come from the system itself (a chat message to someone not watching it).
FEED_KINDS = frozenset({"NOTIFICATION", "ORDER_UPDATE", "NEW_APPLICATION"})


class FeedSide:
    """A user's feed as one connection sees it: feedSeqs and notification ids received."""

    def __init__(self) -> None:
        self.feed_seqs: set[int] = set()
        self.feed_contiguous = 0  # every feedSeq up to this one was received: resume from it
        self.notes: set[str] = set()  # NOTIFICATION ids received
        self.feed_duplicates = 0

    def on_feed(self, kind: str, data: Any) -> None:
        """Count one event that carries a feedSeq (NOTIFICATION, ORDER_UPDATE, NEW_APPLICATION)."""
        seq = data.get("feedSeq") if isinstance(data, dict) else None
        if not isinstance(seq, int):
            return
        if seq in self.feed_seqs:
            self.feed_duplicates += 1
            return
        self.feed_seqs.add(seq)
        while self.feed_contiguous + 1 in self.feed_seqs:
            self.feed_contiguous += 1
        if kind == "NOTIFICATION":
            self.notes.add(str(data["id"]))


class _User(Protocol):
    user: str
    token: str
    feed: FeedSide


class Publisher:
    """Publishes NOTIFICATIONs to random users of `sides` at `per_s` a second (Poisson), to either
    hub (a refused connection goes to the other one, as a load balancer would); remembers what each
    user must receive: the notifications whose publish was answered 200."""

    def __init__(self, http: aiohttp.ClientSession, api_key: str, ports: list[int]) -> None:
        self.http = http
        self.api_key = api_key
        self.ports = ports
        self.expected: dict[str, set[str]] = collections.defaultdict(set)  # user -> notification ids
        self.answers: collections.Counter[str] = collections.Counter()
        self.done = False

    async def loop(self, sides: Sequence[_User], per_s: float) -> None:
        tasks: set[asyncio.Task[None]] = set()
        while not self.done:
            side = random.choice(sides)
            task = asyncio.create_task(self.publish(side.user, random.choice(self.ports)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(random.expovariate(per_s))
        await asyncio.gather(*tasks, return_exceptions=True)

    async def publish(self, user: str, port: int, failed_over: bool = False) -> None:
        body = {"userId": user, "title": "Soak", "body": "a notice from the server API", "type": "system"}
        try:
            async with self.http.post(
                f"http://127.0.0.1:{port}/api/server/publish",
                json=body,
                headers={"X-Api-Key": self.api_key},
                timeout=aiohttp.ClientTimeout(total=30),
            ) as resp:
                answer = await resp.json(content_type=None)
                self.answers[str(resp.status)] += 1
                if resp.status == 200:
                    for delivery in answer["data"]["deliveries"]:
                        self.expected[delivery["userId"]].add(str(delivery["notificationId"]))
        except aiohttp.ClientConnectorError:
            if failed_over:
                self.answers["unreachable"] += 1
                return
            self.answers["failed over"] += 1
            await self.publish(user, self.ports[1] if port == self.ports[0] else self.ports[0], True)
        except (OSError, aiohttp.ClientError, TimeoutError) as exc:
            self.answers[f"failed {type(exc).__name__}"] += 1

    def missing(self, sides: Sequence[_User]) -> int:
        """Notifications answered 200 that their user's connection has not received."""
        return sum(len(self.expected.get(s.user, set()) - s.feed.notes) for s in sides)


def feed_figures(publisher: Publisher, sides: Sequence[_User]) -> dict[str, Any]:
    """What the soak reports of the feed: published through the API (answered 200), every
    NOTIFICATION received (chat notices included), the published ones missing, feedSeqs received
    twice, and users whose feedSeqs are not exactly 1..n."""
    gaps = sum(1 for s in sides if s.feed.feed_seqs and len(s.feed.feed_seqs) != max(s.feed.feed_seqs))
    return {
        "feed_published": sum(len(v) for v in publisher.expected.values()),
        "feed_received": sum(len(s.feed.notes) for s in sides),
        "feed_missing": publisher.missing(sides),
        "feed_duplicates": sum(s.feed.feed_duplicates for s in sides),
        "feed_users_with_gaps": gaps,
        "feed_gap_samples": [
            sorted(s.feed.feed_seqs)[:30]
            for s in sides
            if s.feed.feed_seqs and len(s.feed.feed_seqs) != max(s.feed.feed_seqs)
        ][:3],
        "feed_publish_answers": dict(publisher.answers),
    }
