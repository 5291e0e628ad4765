"""`python -m hub api-key create|list|revoke` (`./run api-key ...`): the operator's management of
server API keys (rest/api_keys.py). `create` prints the key once; only its hash is kept."""

from __future__ import annotations

import argparse
import sys

import asyncpg

from rest import api_keys


def add_key_commands(parser: argparse.ArgumentParser) -> None:
    """The api-key subcommands on `parser`."""
    sub = parser.add_subparsers(dest="key_command", required=True)
    create = sub.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", required=True, help="what the key is for, e.g. 'billing backend'")
    create.add_argument("--scopes", required=True, help=f"comma-separated, among {','.join(api_keys.SCOPES)}")
    sub.add_parser("list", help="list keys (prefix, name, scopes, last use, revoked)")
    revoke = sub.add_parser("revoke", help="revoke a key by its id or prefix")
    revoke.add_argument("key", help="the key's id or its 12-character prefix (gw_...)")


async def run_key_command(dsn: str, args: argparse.Namespace) -> int:
    """Run one api-key subcommand on the database at `dsn`; the process's exit code."""
    conn = await asyncpg.connect(dsn)
    try:
        if args.key_command == "create":
            name = str(args.name).strip()
            if not 1 <= len(name) <= 100:
                print("gigwire: --name must be 1 to 100 characters", file=sys.stderr)
                return 2
            try:
                scopes = api_keys.parse_scopes(args.scopes)
            except ValueError as exc:
                print(f"gigwire: --scopes: {exc}", file=sys.stderr)
                return 2
            key_id, key = await api_keys.create(conn, name, scopes)
            print(key)
            print(f"id {key_id}, scopes {','.join(scopes)}: store the key now, it is not shown again",
                  file=sys.stderr)  # fmt: skip
            return 0
        if args.key_command == "list":
            for row in await api_keys.listing(conn):
                state = f"revoked {row['revoked_at']:%Y-%m-%d %H:%M}" if row["revoked_at"] else "active"
                used = f"{row['last_used_at']:%Y-%m-%d %H:%M}" if row["last_used_at"] else "never used"
                print(
                    f"{row['id']}  {row['prefix']}  {','.join(row['scopes'])}  {state}  {used}  {row['name']}"
                )
            return 0
        if await api_keys.revoke(conn, args.key) == 0:
            print(f"gigwire: no active key with id or prefix {args.key}", file=sys.stderr)
            return 1
        print(f"revoked {args.key}")
        return 0
    finally:
        await conn.close()
