"""Fixtures of the admin tests: an admin, two ordinary users and a stranger, with tokens."""

from __future__ import annotations

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


@pytest.fixture
async def people(pool: asyncpg.Pool, settings: Settings) -> People:
    return People(
        admin=await make_user(pool, settings, roles=("client", "doer", "admin"), name="Admin One"),
        other_admin=await make_user(pool, settings, roles=("client", "doer", "admin"), name="Admin Two"),
        alice=await make_user(pool, settings, name="Alice Zephyrine"),
        bob=await make_user(pool, settings, name="Bob Quill"),
    )
