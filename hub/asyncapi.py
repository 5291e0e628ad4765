"""GET /api/asyncapi.json: the realtime protocol as an AsyncAPI 3.0 document, generated from the
event Structs of hub/events.py, so the document cannot drift from what the hub validates and sends.

The document describes the hub (the server): a client's event is an operation the hub `receive`s,
a server event one it `send`s. Both transports are servers with a channel each: `/ws` carries
`{type, data?, ref?}` frames; Socket.IO carries the same events with `type` as the event name and
`data` as its one argument. The broker channels `user:<id>` and `order:<id>` are documented too:
they say which events a session gets without asking and which after SUBSCRIBE_CHAT."""

from __future__ import annotations

import functools
from typing import Any, Final

import msgspec
from aiohttp import web
from msgspec import Struct

from hub import codes
from hub.codes import ERROR_CODES
from hub.events import ACKS, CLIENT_EVENTS, FEED_EVENTS, FEED_SEQ, MAX_REF, SERVER_EVENTS, Error

REF: Final = "#/components/schemas/{name}"
# The codes and their meanings are hub.codes' (the one place); the document lists the close codes a
# client can see (1005 and 1006 are never sent).
CLOSE_CODES: Final = {
    code: meaning for code, meaning in codes.CLOSE_CODES.items() if code not in (1005, 1006)
}
# Events delivered through the broker channels (the rest are answers to one session).
USER_EVENTS: Final = FEED_EVENTS
ORDER_EVENTS: Final = ("CHAT_MESSAGE", "MESSAGE_READ", "TYPING_START", "TYPING_STOP")


def _description() -> str:
    closes = "\n".join(f"| {code} | {meaning} |" for code, meaning in CLOSE_CODES.items())
    # sorted: ERROR_CODES is a frozenset, whose order changes between processes
    errors = "\n".join(f"| `{code}` | {codes.ERROR_MEANINGS[code]} |" for code in sorted(ERROR_CODES))
    return (
        "The realtime wire contract of gigwire (docs/protocol.md). Authenticate with `?token=` on"
        " /ws, Socket.IO's `auth: {token}`, or a first `AUTHENTICATE` event; the server answers"
        " `AUTHENTICATED`. Resume the user's feed with `sinceFeedSeq` beside the token (all three"
        " ways): the feed events after it follow in feedSeq order, or one `FEED_EXPIRED`. A"
        " client frame with `ref` gets exactly one `ACK` or `ERROR` with that"
        " `ref`. A bad frame gets an `ERROR` and the connection stays open. Timestamps are epoch"
        " milliseconds; ids are UUID strings; unknown fields in `data` are ignored.\n\n"
        "## ERROR codes\n\n| code | when |\n|---|---|\n" + errors + "\n\n"
        "## WebSocket close codes\n\n| code | meaning |\n|---|---|\n" + closes + "\n\n"
        "On Socket.IO, 1001 and 1013 end the Engine.IO transport (socket.io-client reconnects by"
        " itself); 4401 and 4408 disconnect the namespace; a frame over 64 KiB drops the connection."
    )


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _name(model: type[Struct]) -> str:
    return model.__name__


def _doc(model: type[Struct] | None) -> str:
    return (model.__doc__ or "").strip() if model is not None else "No data."


def _acks(ws: bool) -> dict[str, Any]:
    """ACK data: one of the ack shapes (anyOf: they overlap, e.g. {orderId} and {orderId, seq}). On
    /ws, AUTHENTICATE and PING are answered by AUTHENTICATED and PONG instead of an ACK."""
    kinds = [k for k in ACKS if not (ws and k in ("AUTHENTICATE", "PING"))]
    names = sorted({_name(ACKS[k]) for k in kinds})
    return {"anyOf": [_ref(n) for n in names], "description": "The ACK data of the acknowledged event."}


def _data(kind: str, model: type[Struct] | None) -> dict[str, Any] | None:
    if kind == "ACK":
        return _acks(ws=True)
    return None if model is None else _ref(_name(model))


def _envelope(kind: str, data: dict[str, Any] | None, data_required: bool) -> dict[str, Any]:
    """The /ws frame `{type, data?, ref?}` of one event."""
    ref = {"type": "string", "minLength": 1, "maxLength": MAX_REF, "description": "The client's ref."}
    properties: dict[str, Any] = {"type": {"const": kind}}
    required = ["type"]
    if data is not None:
        properties["data"] = data
        if data_required:
            required.append("data")
    properties["ref"] = ref
    return {"type": "object", "properties": properties, "required": required}


def _message(kind: str, title: str, summary: str, payload: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": kind,
        "title": title,
        "summary": summary,
        "contentType": "application/json",
        "payload": payload,
    }


def _required(model: type[Struct]) -> bool:
    return any(f.required for f in msgspec.structs.fields(model))


def _messages() -> dict[str, dict[str, Any]]:
    """Every event as a message: `ws.client.X`/`ws.server.X` (frames), `sio.client.X`/
    `sio.server.X` (event arguments), and `sio.ack` (the Socket.IO ack callback's argument)."""
    out: dict[str, dict[str, Any]] = {}
    for kind, model in CLIENT_EVENTS.items():
        summary = _doc(model)
        frame = _envelope(kind, _ref(_name(model)), _required(model))
        out[f"ws.client.{kind}"] = _message(kind, f"{kind} (client, /ws)", summary, frame)
        out[f"sio.client.{kind}"] = _message(kind, f"{kind} (client, Socket.IO)", summary, _ref(_name(model)))
    for kind, server_model in SERVER_EVENTS.items():
        summary = _doc(server_model) if kind != "ACK" else "Answers a client frame that carried `ref`."
        data = _data(kind, server_model)
        frame = _envelope(kind, data, True)
        out[f"ws.server.{kind}"] = _message(kind, f"{kind} (server, /ws)", summary, frame)
        if kind not in ("ACK", "PONG"):  # on Socket.IO these are the ack callback's argument
            payload = data if data is not None else {"type": "object"}
            out[f"sio.server.{kind}"] = _message(kind, f"{kind} (server, Socket.IO)", summary, payload)
    out["sio.server.PONG"] = _message(
        "PONG", "PONG (server, Socket.IO)", "Answers PING (which is also acked with {}).", {}
    )
    error = {
        "type": "object",
        "properties": {"error": _ref(_name(Error))},
        "required": ["error"],
    }
    out["sio.ack"] = _message(
        "ack",
        "Socket.IO acknowledgement",
        "The argument of an event's ack callback: the ACK data, or {error: {code, message}}.",
        {"anyOf": [_acks(ws=False), error]},
    )
    return out


def _channel_refs(keys: list[str]) -> dict[str, dict[str, str]]:
    return {key: {"$ref": f"#/components/messages/{key}"} for key in keys}


def build(host: str = "localhost:8080", secure: bool = False) -> dict[str, Any]:
    """The AsyncAPI 3.0 document, with `host` (and ws or wss) as both servers' address."""
    models: set[type[Struct]] = {*CLIENT_EVENTS.values(), *ACKS.values()}
    models.update(m for m in SERVER_EVENTS.values() if m is not None)
    _, schemas = msgspec.json.schema_components(sorted(models, key=_name), ref_template=REF)
    for kind in FEED_EVENTS:  # hub.feed adds feedSeq to a feed event's data
        feed_model = SERVER_EVENTS[kind]
        assert feed_model is not None
        schemas[_name(feed_model)]["properties"]["feedSeq"] = FEED_SEQ
    messages = _messages()
    ws_keys = [k for k in messages if k.startswith("ws.")]
    sio_keys = [k for k in messages if k.startswith("sio.")]
    protocol = "wss" if secure else "ws"
    channels: dict[str, Any] = {
        "ws": {
            "address": "/ws",
            "title": "Raw WebSocket",
            "description": "RFC 6455, one JSON text frame per event, no extension or subprotocol.",
            "servers": [{"$ref": "#/servers/ws"}],
            "messages": _channel_refs(ws_keys),
            "bindings": {
                "ws": {
                    "method": "GET",
                    "query": {
                        "type": "object",
                        "properties": {
                            "token": {"type": "string", "description": "An access token."},
                            "sinceFeedSeq": {
                                "type": "integer",
                                "minimum": 0,
                                "description": "Resume the user's feed after this feedSeq.",
                            },
                        },
                    },
                    "bindingVersion": "0.1.0",
                }
            },
        },
        "socketio": {
            "address": "/socket.io/",
            "title": "Socket.IO",
            "description": "Socket.IO v5 (Engine.IO v4), namespace `/`: event name = `type`, argument"
            " = `data`; handshake `auth: {token, sinceFeedSeq?}`.",
            "servers": [{"$ref": "#/servers/socketio"}],
            "messages": _channel_refs(sio_keys),
        },
        "user": {
            "address": "user:{userId}",
            "title": "A user's feed",
            "description": "Every session of the user joins it on AUTHENTICATED, on every node and"
            " transport; no subscription needed. ORDER_UPDATE goes to both parties' feeds. Each"
            " event carries the user's gapless `feedSeq` and arrives in feedSeq order, also across"
            " broker outages (refilled from PostgreSQL); AUTHENTICATED carries the last feedSeq and"
            " sinceFeedSeq (AUTHENTICATE, `?sinceFeedSeq=`, `auth.sinceFeedSeq`) replays what came"
            " after it, or sends FEED_EXPIRED when it is no longer kept.",
            "parameters": {"userId": {"description": "The user's id."}},
            "messages": _channel_refs([f"ws.server.{k}" for k in USER_EVENTS]),
        },
        "convo": {
            "address": "convo:{userId}",
            "title": "A user's conversation signals",
            "description": "CONVERSATION_UPDATED for the user's sessions that sent WATCH_CONVERSATIONS,"
            " each for a chat the session is not subscribed to; published only while some process"
            " announced a watching session of the user. Best effort: not stored, not replayed.",
            "parameters": {"userId": {"description": "The user's id."}},
            "messages": _channel_refs(["ws.server.CONVERSATION_UPDATED"]),
        },
        "order": {
            "address": "order:{orderId}",
            "title": "An order's chat",
            "description": "Joined by SUBSCRIBE_CHAT (the order's client and doer only; before the"
            " order exists, an application's pre-order thread, named by the application's id, which"
            " the order takes as its own). Chat messages"
            " arrive in seq order; typing goes to the other party only; typing and reads are"
            " best-effort and not replayed.",
            "parameters": {"orderId": {"description": "The chat id: an order's or application's id."}},
            "messages": _channel_refs([f"ws.server.{k}" for k in ORDER_EVENTS]),
        },
    }
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "gigwire realtime protocol", "version": "1.0.0", "description": _description()},
        "defaultContentType": "application/json",
        "servers": {
            "ws": {
                "host": host,
                "protocol": protocol,
                "pathname": "/ws",
                "title": "Raw WebSocket",
                "bindings": {"ws": {}},
            },
            "socketio": {
                "host": host,
                "protocol": protocol,
                "pathname": "/socket.io/",
                "title": "Socket.IO",
                "description": "The stock socket.io-client 4.x connects with `io(url, {auth: {token}})`.",
            },
        },
        "channels": channels,
        "operations": _operations(messages),
        "components": {"schemas": schemas, "messages": messages},
    }


def _operations(messages: dict[str, Any]) -> dict[str, Any]:
    """One operation per event and transport; a client event's reply names its ACK and ERROR."""
    ops: dict[str, Any] = {}
    for key in messages:
        parts = key.split(".")
        if len(parts) != 3:
            continue  # sio.ack: an acknowledgement, not an event
        transport, side, kind = parts
        channel = "ws" if transport == "ws" else "socketio"
        op: dict[str, Any] = {
            "action": "receive" if side == "client" else "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/{key}"}],
            "summary": messages[key]["summary"],
        }
        if side == "client":
            answers = ["ws.server.ACK", "ws.server.ERROR"] if transport == "ws" else ["sio.ack"]
            if kind == "AUTHENTICATE" and transport == "ws":
                answers = ["ws.server.AUTHENTICATED", "ws.server.ERROR"]
            elif kind == "PING" and transport == "ws":
                answers = ["ws.server.PONG"]
            op["reply"] = {
                "channel": {"$ref": f"#/channels/{channel}"},
                "messages": [{"$ref": f"#/channels/{channel}/messages/{a}"} for a in answers],
            }
        ops[f"{transport}.{side}.{kind}"] = op
    for channel, kinds in (("user", USER_EVENTS), ("order", ORDER_EVENTS)):
        ops[f"{channel}.deliver"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": f"#/channels/{channel}/messages/ws.server.{k}"} for k in kinds],
        }
    return ops


@functools.lru_cache(maxsize=16)  # keyed by the request's Host: bounded
def _document_bytes(host: str, secure: bool) -> bytes:
    return msgspec.json.encode(build(host, secure))


async def asyncapi_json(request: web.Request) -> web.Response:
    """GET /api/asyncapi.json: the document, its servers at the host the request came to."""
    body = _document_bytes(request.host, request.secure)
    return web.Response(body=body, content_type="application/json")
