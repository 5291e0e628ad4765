"""GET /api/asyncapi.json: a valid AsyncAPI 3.0 document of every realtime event on both
transports, whose message schemas accept what the hub sends and refuse what it must not.

No AsyncAPI 3.0 meta-schema ships on PyPI and nothing is fetched here, so validity is a structural
check of what AsyncAPI 3.0 requires (fields, actions, every `$ref` resolving, an operation's
messages being its channel's) plus every schema checked as JSON Schema 2020-12. With the official
schema at hand (asyncapi/spec-json-schemas, schemas/3.0.0-without-$id.json), point
ASYNCAPI_3_SCHEMA at it to validate against it as well."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from aiohttp.test_utils import TestClient
from jsonschema import Draft202012Validator

from hub.asyncapi import CLOSE_CODES, build
from hub.codes import ERROR_CODES
from tests.frame_recorder import FrameRecorder

# From PROTOCOL.md's tables: the contract, not the code under test.
CLIENT = {
    "AUTHENTICATE",
    "SUBSCRIBE_CHAT",
    "UNSUBSCRIBE_CHAT",
    "CHAT_MESSAGE",
    "MESSAGE_READ",
    "TYPING_START",
    "TYPING_STOP",
    "WATCH_CONVERSATIONS",
    "PING",
}
SERVER = {
    "AUTHENTICATED",
    "CHAT_MESSAGE",
    "MESSAGE_READ",
    "TYPING_START",
    "TYPING_STOP",
    "ORDER_UPDATE",
    "FEED_EXPIRED",
    "NEW_APPLICATION",
    "NOTIFICATION",
    "ACK",
    "ERROR",
    "PONG",
    "SESSION_EXPIRING",
    "CONVERSATION_UPDATED",
}
ORDER = "6f1c0b7e-3a52-4d8e-9a0e-2f4b8c1d7e90"


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return build()


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for raw in ref[2:].split("/"):
        part = raw.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved {ref}"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def validator(doc: dict[str, Any], message: str) -> Draft202012Validator:
    return Draft202012Validator(
        {"components": doc["components"], "$ref": f"#/components/messages/{message}/payload"}
    )


def test_the_document_has_the_structure_asyncapi_3_requires(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] and doc["info"]["version"]
    for server in doc["servers"].values():
        assert server["host"] and server["protocol"] in ("ws", "wss")
    assert {s["pathname"] for s in doc["servers"].values()} == {"/ws", "/socket.io/"}
    for ref in refs(doc):
        resolve(doc, ref)
    for name, channel in doc["channels"].items():
        assert isinstance(channel["address"], str), name
        assert channel["messages"], name
        for message in channel["messages"].values():
            assert message["$ref"].startswith("#/components/messages/")
        for param in channel.get("parameters", {}):
            assert "{" + param + "}" in channel["address"]
    for name, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), name
        channel_ref = op["channel"]["$ref"]
        assert channel_ref.startswith("#/channels/")
        # AsyncAPI 3: an operation's messages are messages of its channel.
        for message in op["messages"] + op.get("reply", {}).get("messages", []):
            assert message["$ref"].startswith(channel_ref + "/messages/"), (name, message)
    for name, message in doc["components"]["messages"].items():
        assert message["contentType"] == "application/json", name
        Draft202012Validator.check_schema(message["payload"])
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


@pytest.mark.skipif(not os.environ.get("ASYNCAPI_3_SCHEMA"), reason="no AsyncAPI 3.0 schema given")
def test_the_document_validates_against_the_official_schema(doc: dict[str, Any]) -> None:
    schema = json.loads(Path(os.environ["ASYNCAPI_3_SCHEMA"]).read_text())
    jsonschema.validators.validator_for(schema)(schema).validate(json.loads(json.dumps(doc)))


def test_every_event_of_both_transports_and_every_code_is_documented(doc: dict[str, Any]) -> None:
    messages = doc["components"]["messages"]

    def names(prefix: str) -> set[str]:
        return {m["name"] for k, m in messages.items() if k.startswith(prefix)}

    assert names("ws.client.") == CLIENT
    assert names("ws.server.") == SERVER
    assert names("sio.client.") == CLIENT
    assert names("sio.server.") == SERVER - {"ACK"}  # a Socket.IO ACK is the ack callback's argument
    assert "sio.ack" in messages
    ops = doc["operations"]
    for kind in CLIENT:
        assert ops[f"ws.client.{kind}"]["action"] == "receive"
        assert ops[f"sio.client.{kind}"]["action"] == "receive"
    for kind in SERVER:
        assert ops[f"ws.server.{kind}"]["action"] == "send"
    text = doc["info"]["description"]
    for code in (1000, 1001, 1002, 1007, 1009, 1011, 1013, 4401, 4408):
        assert f"| {code} |" in text
    assert set(CLOSE_CODES) == {1000, 1001, 1002, 1007, 1008, 1009, 1011, 1013, 4401, 4408}
    for error in ERROR_CODES:
        assert f"`{error}`" in text
    assert {"user:{userId}", "order:{orderId}"} <= {c["address"] for c in doc["channels"].values()}


def test_message_schemas_accept_the_wire_and_refuse_what_is_not(doc: dict[str, Any]) -> None:
    ok = {
        "ws.client.CHAT_MESSAGE": {
            "type": "CHAT_MESSAGE",
            "data": {"orderId": ORDER, "text": "hi", "attachments": [{"url": "https://a.example/f"}]},
            "ref": "c-1",
        },
        "ws.client.PING": {"type": "PING"},
        "ws.server.ERROR": {
            "type": "ERROR",
            "data": {"code": "rate_limited", "message": "m", "retryAfterMs": 5},
        },
        "ws.server.ACK": {"type": "ACK", "data": {"orderId": ORDER, "lastSeq": 3, "replayed": 0}, "ref": "r"},
        "ws.server.PONG": {"type": "PONG", "ref": "r"},
        "sio.ack": {"error": {"code": "forbidden", "message": "m"}},
    }
    for message, instance in ok.items():
        validator(doc, message).validate(instance)
    bad = {
        "ws.client.CHAT_MESSAGE": {"type": "CHAT_MESSAGE", "data": {"orderId": ORDER, "text": "x" * 4001}},
        "ws.client.SUBSCRIBE_CHAT": {"type": "SUBSCRIBE_CHAT", "data": {"orderId": ORDER, "sinceSeq": -1}},
        "ws.client.AUTHENTICATE": {"type": "AUTHENTICATE", "data": {}},
        "ws.server.ERROR": {"type": "ERROR", "data": {"message": "no code"}},
        "ws.server.CHAT_MESSAGE": {"type": "CHAT_MESSAGE", "data": {"id": "m", "orderId": ORDER}},
        "ws.server.ORDER_UPDATE": {"type": "NOTIFICATION", "data": {}},
    }
    for message, instance in bad.items():
        assert not validator(doc, message).is_valid(instance), message


def test_the_recorder_flags_a_frame_the_document_refuses(doc: dict[str, Any]) -> None:
    recorder = FrameRecorder()
    recorder.record(b'{"type":"TYPING_START","data":{"orderId":"o","userId":"u"}}')
    assert recorder.problems(doc) == []
    recorder.record(b'{"type":"TYPING_START","data":{"orderId":"o"}}')
    recorder.record(b'{"type":"SURPRISE","data":{}}')
    assert len(recorder.problems(doc)) == 2


def test_the_run_records_the_frames_the_hub_encodes(frame_recorder: FrameRecorder) -> None:
    from hub.protocol import HubError

    before = frame_recorder.seen
    HubError("not_found", "No order.").frame("r")  # encoded by hub code: recorded
    assert frame_recorder.seen == before + 1


async def test_served_at_api_asyncapi_json_and_linked_from_the_docs(client: TestClient[Any, Any]) -> None:
    response = await client.get("/api/asyncapi.json")
    assert response.status == 200 and response.content_type == "application/json"
    served = await response.json()
    assert served["asyncapi"] == "3.0.0"
    assert {s["host"] for s in served["servers"].values()} == {f"{client.host}:{client.port}"}
    page = await (await client.get("/api/docs")).text()
    assert 'href="/api/asyncapi.json"' in page
