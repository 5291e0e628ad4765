"""`python -m hub api-key create|list|revoke` (what `./run api-key ...` runs), as a real process on
this run's database: the key printed once works against the server API, only its hash is stored,
and revoking it (by prefix) makes the API refuse it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg

from rest import api_keys
from tests.conftest import TEST_JWT_SECRET
from tests.services import Services

ROOT = Path(__file__).resolve().parents[2]


def hub_cli(services: Services, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": services.dsn,
        "GIGWIRE_ENV": "dev",
        "GIGWIRE_DATA_DIR": str(tmp_path),
        "JWT_SECRET": TEST_JWT_SECRET,
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.run(
        [sys.executable, "-m", "hub", "api-key", *args],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_create_list_revoke(
    services: Services, tmp_path: Path, pool: asyncpg.Pool, client: Any
) -> None:
    made = hub_cli(services, tmp_path, "create", "--name", "billing backend", "--scopes", "stats,presence")
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("gw_") and len(key) == 46 and "not shown again" in made.stderr
    row = await pool.fetchrow("SELECT * FROM api_keys WHERE prefix = $1", key[:12])
    assert row["key_hash"] == api_keys.key_hash(key) and key not in str(dict(row))
    assert sorted(row["scopes"]) == ["presence", "stats"]

    resp = await client.get("/api/server/stats", headers={"X-Api-Key": key})
    assert resp.status == 200, await resp.text()
    listed = hub_cli(services, tmp_path, "list")
    assert listed.returncode == 0 and key[:12] in listed.stdout and key not in listed.stdout

    revoked = hub_cli(services, tmp_path, "revoke", key[:12])
    assert revoked.returncode == 0, revoked.stderr
    resp = await client.get("/api/server/stats", headers={"X-Api-Key": key})
    assert resp.status == 401
    again = hub_cli(services, tmp_path, "revoke", key[:12])
    assert again.returncode == 1 and "no active key" in again.stderr

    for bad in (["--scopes", "stats,root"], ["--scopes", ""]):
        refused = hub_cli(services, tmp_path, "create", "--name", "x", *bad)
        assert refused.returncode == 2 and "--scopes" in refused.stderr
