"""The embedded PostgreSQL of the dev default: data under `<data_dir>/pg`, found again on restart."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger("gigwire.embedded")


class EmbeddedPostgres:
    """Starts (or reattaches to) a private PostgreSQL server from the `pgserver` package."""

    def __init__(self, data_dir: Path) -> None:
        self.path = (data_dir / "pg").resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start the server if needed; return a DSN for the `gigwire` database."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
            warnings.simplefilter("ignore")
            import pgserver  # type: ignore[attr-defined,unused-ignore]

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(  # type: ignore[attr-defined,unused-ignore]
            self.path, cleanup_mode="stop"
        )
        exists = self._server.psql("SELECT 1 FROM pg_database WHERE datname = 'gigwire';")
        if "(1 row)" not in exists:
            self._server.psql("CREATE DATABASE gigwire;")
        dsn: str = self._server.get_uri("gigwire")
        log.info("embedded postgresql ready", extra={"dataDir": str(self.path)})
        return dsn

    def stop(self) -> None:
        """Stop the server; its data stays on disk."""
        if self._server is not None:
            self._server.cleanup()
            self._server = None
