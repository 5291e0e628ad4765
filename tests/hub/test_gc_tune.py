"""Python's cycle collector tuned and timed (hub/gc_tune.py): what `settle` changes, what the pause
histogram counts, and that a started web process applies both."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hub import gc_tune
from tests.metrics_text import gc_pause_counts
from tests.services import Services
from tests.test_shutdown import WebProcess


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """Whatever a test does to the collector is undone after it."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def _pauses(registry: CollectorRegistry) -> dict[tuple[str, str], float]:
    """(sample name, generation or le) -> value of gigwire_gc_pause_seconds."""
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        if family.name != "gigwire_gc_pause_seconds":
            continue
        for sample in family.samples:
            key = sample.labels["generation"] + (f"/{sample.labels['le']}" if "le" in sample.labels else "")
            out[(sample.name, key)] = sample.value
    return out


def test_settle_freezes_startup_and_raises_only_the_young_threshold(restored_gc: None) -> None:
    _, older, oldest = gc.get_threshold()
    survivor = [object()]  # alive now: frozen by settle
    gc_tune.settle(12_345)
    assert gc.get_threshold() == (12_345, older, oldest)
    assert gc.get_freeze_count() > 0
    del survivor


def test_settle_zero_leaves_the_collector_alone(restored_gc: None) -> None:
    before = gc.get_threshold()
    gc.unfreeze()
    gc_tune.settle(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_pause_meter_counts_each_collection_by_generation_while_installed() -> None:
    registry = CollectorRegistry()
    meter = gc_tune.PauseMeter(registry)
    assert _pauses(registry)[("gigwire_gc_pause_seconds_count", "2")] == 0
    meter.install()
    meter.install()  # idempotent: one callback, one count per collection
    try:
        gc.collect(2)
        gc.collect(2)
        gc.collect(0)
    finally:
        meter.uninstall()
        meter.uninstall()
    counted = _pauses(registry)
    assert counted[("gigwire_gc_pause_seconds_count", "2")] == 2
    assert counted[("gigwire_gc_pause_seconds_count", "0")] >= 1
    assert counted[("gigwire_gc_pause_seconds_sum", "2")] > 0
    # cumulative buckets: +Inf holds every pause, no bucket holds fewer than the one before it
    buckets = [
        counted[("gigwire_gc_pause_seconds_bucket", f"2/{b}")] for b in (*map(str, gc_tune.BUCKETS), "+Inf")
    ]
    assert buckets == sorted(buckets) and buckets[-1] == 2
    gc.collect(2)  # uninstalled: no longer counted
    assert _pauses(registry)[("gigwire_gc_pause_seconds_count", "2")] == 2


def test_the_c_heap_trim_is_bound_and_runs_here() -> None:
    # glibc on this machine: malloc_trim exists and answers 1 (memory returned) or 0 (none to return)
    call = gc_tune._malloc_trim()
    assert call is not None
    assert call(0) in (0, 1)


async def test_keep_tidy_collects_the_young_then_trims_until_cancelled(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(gc_tune, "_malloc_trim", lambda: calls.append)
    monkeypatch.setattr(gc, "collect", lambda generation=2: calls.append(("collect", generation)))
    task = asyncio.create_task(gc_tune.keep_tidy(0.01))
    await asyncio.sleep(0.1)
    assert not task.done() and len(calls) >= 6
    assert calls[:4] == [("collect", 1), 0, ("collect", 1), 0]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def test_a_started_web_process_settles_and_serves_its_pauses(services: Services, tmp_path: Path) -> None:
    web = WebProcess(services, tmp_path, DATABASE_POOL_MAX="3")
    try:
        assert web.listening.wait(60), (web.stdout, web.stderr[-20:])
        deadline = time.monotonic() + 10
        counts: dict[str, float] = {}
        while time.monotonic() < deadline:
            text = httpx.get(f"http://127.0.0.1:{web.port}/metrics", timeout=5).text
            counts = gc_pause_counts(text)
            if counts.get("2", 0) >= 1:
                break
            time.sleep(0.2)
        # settle's own full collection runs after the meter is installed: it is counted
        assert counts.get("2", 0) >= 1, counts
        assert web.stop(30)[0] == 0
    finally:
        web.kill()
