"""The logging rule (docs/operations.md, "Logging"): a client's bad input is at most one WARNING
line without traceback, rate-limited per peer; ERROR stays for the server's own faults."""

from __future__ import annotations

import json
import logging

import pytest
from engineio.packet import Packet

from hub.compat_socketio import _decodable, event_address
from hub.logs import ClientFaultFilter, ClientFaultLimiter, client_peer


def _record(
    name: str, exc: BaseException | None, msg: str = "message async handler error"
) -> logging.LogRecord:
    info = (type(exc), exc, exc.__traceback__) if exc is not None else None
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, (), info)


def _library_error() -> BaseException:
    try:
        Packet(encoded_packet="x")  # engineio's decoder: int("x")
    except ValueError as exc:
        return exc
    raise AssertionError("engineio decoded 'x'")


def _own_error() -> BaseException:
    try:
        json.loads("{")  # the standard library, called from gigwire's code (this file)
    except ValueError as exc:
        return exc
    raise AssertionError


def test_a_library_refusing_client_input_becomes_one_warning_without_traceback() -> None:
    flt = ClientFaultFilter()
    token = client_peer.set("203.0.113.7")
    try:
        record = _record("engineio.server", _library_error())
        assert flt.filter(record)
        assert record.levelno == logging.WARNING and record.exc_info is None
        assert "ValueError" in record.getMessage() and "\n" not in record.getMessage()
        assert getattr(record, "peer", None) == "203.0.113.7"
        # the same peer within the window: dropped; counted on the next line
        assert not flt.filter(_record("engineio.server", _library_error()))
    finally:
        client_peer.reset(token)


def test_an_exception_raised_in_gigwire_code_stays_an_error() -> None:
    record = _record("engineio.server", _own_error())
    assert ClientFaultFilter().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_engineio_error_lines_without_exception_are_client_faults_but_aiohttps_are_not() -> None:
    token = client_peer.set("198.51.100.1")
    try:
        record = _record("engineio.server", None, "The client is using an unsupported version")
        assert ClientFaultFilter().filter(record) and record.levelno == logging.WARNING
    finally:
        client_peer.reset(token)
    record = _record("aiohttp.server", None, "Unhandled")
    assert ClientFaultFilter().filter(record) and record.levelno == logging.ERROR


def test_the_limiter_admits_one_line_per_peer_and_window_and_counts_the_rest() -> None:
    limiter = ClientFaultLimiter(window_s=10)
    assert limiter.admit("a", now=100.0) == 0
    assert limiter.admit("a", now=101.0) is None
    assert limiter.admit("a", now=105.0) is None
    assert limiter.admit("b", now=105.0) == 0  # another peer has its own budget
    assert limiter.admit("a", now=110.5) == 2


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("4hello", True),
        ("2probe", True),
        ("bAAEC", True),
        ("", False),
        ("x", False),
        ("9", False),
        ("b!!", False),
    ],
)
def test_engineio_packets_the_websocket_guard_lets_through(text: str, ok: bool) -> None:
    assert _decodable(text) is ok


def test_the_ack_id_of_an_event_whose_data_does_not_decode() -> None:
    huge = "1" + "0" * 120
    assert event_address(f'22["PING",{huge}]') == (None, 2)
    assert event_address(f'2/chat,7["PING",{huge}]') == ("/chat", 7)
    assert event_address('2["PING"') == (None, None)
    assert event_address("2" + "9" * 120 + "[]") == (None, None)  # an id over 100 digits: none
    assert event_address("3x") is None
