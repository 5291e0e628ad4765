"""JSON logs, one object a line, carrying the request id of the request being served; and the rule
that a client's bad input is at most one WARNING line without traceback, rate-limited per peer,
while ERROR is for the server's own faults (docs/operations.md, "Logging")."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
from pathlib import Path
from typing import Any

import orjson

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object; `extra=` fields become keys of their own."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id.get()
        if rid is not None:
            entry["requestId"] = rid
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def setup_logging(level: str) -> None:
    """Route every logger to stderr as JSON lines at `level`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # pgserver logs every pg_ctl call it makes at INFO; only its problems are worth a line.
    logging.getLogger("pgserver").setLevel(max(logging.WARNING, root.level))
    install_client_fault_filter()
    for name in OUTAGE_LOGGERS:
        logging.getLogger(name).addFilter(OutageFilter())


# --- a client's bad input: one warning line, rate-limited per peer ---------------------------------

client_peer: contextvars.ContextVar[str | None] = contextvars.ContextVar("client_peer", default=None)
"""The address of the client whose request (or connection) is being served, for rate limiting."""

CLIENT_FAULT_WINDOW_S = 10.0
"""At most one client-fault line per peer in this many seconds; the rest are counted."""
CLIENT_FAULT_LOGGERS = ("engineio.server", "socketio.server", "aiohttp.server")
"""Library loggers whose ERROR records a client can cause (malformed packets, HTTP parser refusals)."""
_LIBRARIES = ("engineio", "socketio", "aiohttp")
_MAX_PEERS = 10_000
_PEER_IN_MESSAGE = re.compile(r" from (\S+)")
_ROOT = str(Path(__file__).resolve().parents[1]) + "/"


class ClientFaultLimiter:
    """Which client-fault lines to write: the first per peer in each window, carrying how many were
    suppressed since the last one written."""

    def __init__(self, window_s: float = CLIENT_FAULT_WINDOW_S) -> None:
        self.window_s = window_s
        self._peers: dict[str, tuple[float, int]] = {}  # peer -> (window start, suppressed)

    def admit(self, peer: str, now: float | None = None) -> int | None:
        """None to suppress this line, else how many lines of this peer were suppressed before it."""
        now = time.monotonic() if now is None else now
        start, suppressed = self._peers.get(peer, (-self.window_s, 0))
        if now - start < self.window_s:
            self._peers[peer] = (start, suppressed + 1)
            return None
        if len(self._peers) >= _MAX_PEERS:  # many peers: forget the quiet ones
            self._peers = {p: v for p, v in self._peers.items() if now - v[0] < self.window_s}
        self._peers[peer] = (now, 0)
        return suppressed

    def forget(self) -> None:
        """Start afresh: the next line of every peer is written."""
        self._peers.clear()


CLIENT_FAULTS = ClientFaultLimiter()


def client_fault(logger: logging.Logger, message: str, peer: str | None = None, **extra: Any) -> None:
    """Log a client's bad input as one WARNING line, rate-limited per peer (`peer` defaults to the
    client being served)."""
    who = peer or client_peer.get() or "-"
    suppressed = CLIENT_FAULTS.admit(who)
    if suppressed is not None:
        logger.warning(message, extra={"clientFault": True, "peer": who, "suppressed": suppressed, **extra})


OUTAGE_WINDOW_S = 10.0
"""At most one line per outage message in this many seconds; the rest are counted."""
OUTAGES = ClientFaultLimiter(OUTAGE_WINDOW_S)


def outage(logger: logging.Logger, message: str, **extra: Any) -> None:
    """Log one failure of a dependency (PostgreSQL, Redis) as a WARNING line, at most one per
    `message` in OUTAGE_WINDOW_S with `suppressed` (how many were dropped since the last one
    written): an outage fails every request and every channel at once, and one line each would be
    thousands a second (the soak's Redis restart made 13,000 "gap fill failed" lines)."""
    suppressed = OUTAGES.admit(message)
    if suppressed is not None:
        logger.warning(message, extra={"suppressed": suppressed, **extra})


class OutageFilter(logging.Filter):
    """A library's warnings about a dependency being away (asyncpg's pool retrying its connection
    floor once a second while PostgreSQL restarts): one line per message per OUTAGE_WINDOW_S, its
    exception named in `error` instead of a traceback. Errors pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            return True
        if record.exc_info and record.exc_info[1] is not None:
            record.error = repr(record.exc_info[1])
            record.exc_info = None
            record.exc_text = None
        suppressed = OUTAGES.admit(record.getMessage())
        if suppressed is None:
            return False
        record.suppressed = suppressed
        return True


OUTAGE_LOGGERS = ("asyncpg.pool",)
"""Library loggers whose warnings are about a dependency being away (filtered by OutageFilter)."""


def _library_fault(exc: BaseException | None) -> bool:
    """True when `exc` was raised by a library handling client input: the innermost frame that is
    not the standard library's is engineio's, socketio's or aiohttp's. A frame of gigwire's own code
    there (or a database driver's, ...) makes it the server's fault."""
    owner = None
    tb = exc.__traceback__ if exc is not None else None
    while tb is not None:
        owner = _owner(tb.tb_frame.f_code.co_filename) or owner
        tb = tb.tb_next
    return owner in _LIBRARIES


def _owner(path: str) -> str | None:
    """The installed package a source file belongs to, "gigwire" for this checkout's code, None for
    the standard library."""
    parts = path.replace("\\", "/").split("/")
    if "site-packages" in parts:
        index = parts.index("site-packages")
        return parts[index + 1] if index + 1 < len(parts) else None
    if parts[0] in _LIBRARIES:  # a compiled module's relative name, e.g. aiohttp/_http_parser.pyx
        return parts[0]
    return "gigwire" if path.startswith(_ROOT) else None


class ClientFaultFilter(logging.Filter):
    """On the library loggers of CLIENT_FAULT_LOGGERS: an ERROR record caused by a client's input
    becomes one WARNING line without traceback, rate-limited per peer (or is dropped). Client-caused:
    engineio's and socketio's records with no exception or with one raised in their own (or
    aiohttp's) code; aiohttp's "Error handling request" for an exception raised in a library. An
    exception raised in gigwire's code stays an ERROR with its traceback: that is the server's fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or getattr(record, "clientFault", False):
            return True
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None and record.name.startswith("aiohttp"):
            return True
        if exc is not None and not _library_fault(exc):
            return True
        message = record.getMessage().split("\n", 1)[0][:300]
        found = _PEER_IN_MESSAGE.search(message)
        peer = client_peer.get() or (found.group(1) if found else "-")
        suppressed = CLIENT_FAULTS.admit(peer)
        if suppressed is None:
            return False
        if exc is not None:
            message = f"{message}: {type(exc).__name__}: {str(exc)[:200]}"
        record.msg, record.args = message, ()
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        record.clientFault, record.peer, record.suppressed = True, peer, suppressed
        return True


_FILTER = ClientFaultFilter()


def install_client_fault_filter() -> None:
    """Put the client-fault filter on the library loggers (idempotent)."""
    for name in CLIENT_FAULT_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
