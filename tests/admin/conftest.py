"""Fixtures of the admin tests: an admin, two ordinary users and a stranger, with tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import asyncpg
import pytest

from hub.settings import Settings
from tests.factories import TestUser, make_user


@dataclass
class People:
    admin: TestUser
    other_admin: TestUser
    alice: TestUser
    bob: TestUser
    tag: str
    """In alice's name and no other user's of the run (the tests share one database)."""


@pytest.fixture
async def people(pool: asyncpg.Pool, settings: Settings) -> People:
    tag = "zq" + secrets.token_hex(4)
    return People(
        admin=await make_user(pool, settings, roles=("client", "doer", "admin"), name="Admin One"),
        other_admin=await make_user(pool, settings, roles=("client", "doer", "admin"), name="Admin Two"),
        alice=await make_user(pool, settings, name=f"Alice {tag.upper()}ine"),
        bob=await make_user(pool, settings, name="Bob Quill"),
        tag=tag,
    )
