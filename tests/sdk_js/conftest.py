"""Fixtures of the TypeScript SDK tests: the built SDK (clients/js/dist, built by ./test through
scripts/services.sh), and a cluster of real processes for it: two `python -m hub` on this run's
Redis and database, and one `python -m workers` whose relay publishes the outbox (order events
triggered over REST reach the hubs). Access tokens live 8 s, so the SDK's refresh runs for real."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.services import Services, free_port
from tests.sessions.conftest import Proc, _env, _settle_outbox, _start, _wait_healthy

ROOT = Path(__file__).resolve().parents[2]
SDK = ROOT / "clients" / "js"
NODE_DEPS = ROOT / ".deps" / "node"
TOKEN_TTL_S = 8


@dataclass(frozen=True)
class BuiltSdk:
    node: str
    root: Path  # clients/js, with dist/ built
    deps: Path  # .deps/node: the `ws` package for Node


@pytest.fixture(scope="module")
def sdk() -> BuiltSdk:
    """The built SDK and Node, or skip naming what is missing."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (./test needs nodejs and npm for the SDK tests)")
    if not (SDK / "dist" / "esm" / "index.js").exists() or not (SDK / "dist" / "cjs" / "index.js").exists():
        pytest.skip("clients/js is not built: run ./test, which installs its devDependencies and builds it")
    if not (NODE_DEPS / "node_modules" / "ws" / "package.json").exists():
        pytest.skip("ws is not in .deps/node: run ./test, which installs it with npm")
    return BuiltSdk(node, SDK, NODE_DEPS)


@dataclass
class SdkCluster:
    hubs: list[Proc]
    worker: Proc


@pytest.fixture(scope="module")
def sdk_cluster(services: Services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SdkCluster]:
    """Two hubs and a relay with short-lived access tokens; stopped (SIGTERM, then SIGKILL) after.
    A test may kill a hub; the others keep running."""
    tmp = tmp_path_factory.mktemp("sdk-cluster")
    _settle_outbox(services.dsn)
    ttl = {"ACCESS_TOKEN_TTL": f"{TOKEN_TTL_S}s"}
    hubs: list[Proc] = []
    for name in ("hub-a", "hub-b"):
        port = free_port()
        hub = _start(name, "hub", _env(services, tmp / name, HOST="127.0.0.1", PORT=str(port), **ttl), tmp)
        hub.url = f"http://127.0.0.1:{port}"
        hubs.append(hub)
    worker = _start("workers", "workers", _env(services, tmp / "workers", **ttl), tmp)
    procs = [*hubs, worker]
    try:
        for hub in hubs:
            _wait_healthy(hub)
        yield SdkCluster(hubs, worker)
    finally:
        for p in procs:
            if p.proc.poll() is None:
                p.proc.terminate()
        for p in procs:
            try:
                p.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.proc.kill()
                p.proc.wait()
