"""Client frames decoded by the typed models (hub.events via hub.protocol.parse): the documented
error code and message for each broken field, and a bracketed attachment host that Python's
urlsplit refuses with ValueError answered as bad_request with the connection kept."""

from __future__ import annotations

import orjson
import pytest

from hub.events import ChatSend, SubscribeChat
from hub.protocol import BadFrame, parse
from tests.hub.conftest import Node, Pair

ORDER = "6f1c0b7e-3a52-4d8e-9a0e-2f4b8c1d7e90"


def frame(kind: str, data: object = None, ref: str | None = "r1") -> bytes:
    body: dict[str, object] = {"type": kind, "data": data}
    if ref is not None:
        body["ref"] = ref
    return orjson.dumps(body)


@pytest.mark.parametrize(
    ("data", "code", "message"),
    [
        ({"text": "x"}, "bad_request", "orderId is required: the id as a UUID string."),
        ({"orderId": "abc", "text": "x"}, "bad_request", "orderId must be a UUID string."),
        ({"orderId": "a" * 65, "text": "x"}, "bad_request", "orderId is required: the id as a UUID string."),
        ({"orderId": ORDER, "text": 5}, "bad_request", "text must be a string."),
        (
            {"orderId": ORDER, "attachments": [{"url": "https://a.example/f", "mime": "x\x00"}]},
            "bad_request",
            "attachments[0].mime must not contain NUL characters.",
        ),
        ({"orderId": ORDER, "text": "x" * 4001}, "too_large", "text must be at most 4000 characters."),
        ({"orderId": ORDER, "text": "a\x00b"}, "bad_request", "text must not contain NUL characters."),
        (
            {"orderId": ORDER, "text": " "},
            "bad_request",
            "text is required: 1 to 4000 characters, or attachments.",
        ),
        (
            {"orderId": ORDER, "text": "a", "clientMsgId": ""},
            "bad_request",
            "clientMsgId, when given, must not be empty.",
        ),
        (
            {"orderId": ORDER, "attachments": [{"url": "https://a.example/f"}] * 11},
            "too_large",
            "At most 10 attachments per message.",
        ),
        (
            {"orderId": ORDER, "attachments": [5]},
            "bad_request",
            "attachments[0] must be an object {url or mediaId, name?, mime?, size?}.",
        ),
        (
            {"orderId": ORDER, "attachments": [{"url": "ftp://x/y"}]},
            "bad_request",
            "attachments[0].url must be an https URL.",
        ),
        (
            {"orderId": ORDER, "attachments": [{"url": "http://[::1"}]},
            "bad_request",
            "attachments[0].url must be an https URL.",
        ),
        (
            {"orderId": ORDER, "attachments": [{"url": "https://[abc]/x"}]},
            "bad_request",
            "attachments[0].url must be an https URL.",
        ),
        (
            {"orderId": ORDER, "attachments": [{"url": "https://a.example/f", "name": "n" * 256}]},
            "too_large",
            "attachments[0].name must be at most 255 characters.",
        ),
        (
            {"orderId": ORDER, "attachments": [{"url": "https://a.example/f", "size": True}]},
            "bad_request",
            "attachments[0].size must be an integer >= 0 (bytes).",
        ),
        (
            {"orderId": ORDER, "attachments": [{"url": "http://a.example/f"}]},
            "bad_request",
            "attachments[0].url must be an https URL.",
        ),
        (
            {"orderId": ORDER, "attachments": [{"name": "f"}]},
            "bad_request",
            "attachments[0] needs one of url (https) and mediaId.",
        ),
        (
            {"orderId": ORDER, "attachments": [{"mediaId": "f"}]},
            "bad_request",
            "attachments[0].mediaId must be a UUID string.",
        ),
        ([], "bad_request", "data must be a JSON object."),
    ],
)
def test_chat_message_errors(data: object, code: str, message: str) -> None:
    with pytest.raises(BadFrame) as caught:
        parse(frame("CHAT_MESSAGE", data))
    assert (caught.value.code, caught.value.message, caught.value.ref) == (code, message, "r1")


def test_envelope_errors_and_what_is_accepted() -> None:
    with pytest.raises(BadFrame) as caught:
        parse(b'{"type": "PING", "ref": ""}')
    assert caught.value.ref is None and caught.value.message.startswith("ref must be")
    with pytest.raises(BadFrame) as caught:
        parse(b'{"type": "NOPE", "ref": "r9"}')
    assert caught.value.ref == "r9" and "SUBSCRIBE_CHAT" in caught.value.message
    with pytest.raises(BadFrame) as caught:
        parse(frame("SUBSCRIBE_CHAT", {"orderId": ORDER, "sinceSeq": 2**53 + 1}))
    assert caught.value.message == "sinceSeq must be an integer >= 0: the last seq you have."
    sub = parse(frame("SUBSCRIBE_CHAT", {"orderId": ORDER.upper(), "sinceSeq": 4, "newer": True}))
    assert sub.data == SubscribeChat(ORDER, 4) and sub.ref == "r1"
    chat = parse(
        frame("CHAT_MESSAGE", {"orderId": ORDER, "text": None, "attachments": [{"url": "https://a/f"}]})
    )
    assert isinstance(chat.data, ChatSend) and chat.data.text == "" and chat.data.attachments
    assert parse(b'{"type": "PING"}').data is not None


async def test_a_bracketed_attachment_host_is_bad_request_and_the_connection_stays(
    node: Node, pair: Pair
) -> None:
    conn = await node.connect(pair.client, subscribe=pair.order_id)
    for url in ("http://[::1", "https://[abc]/x"):
        err = await conn.request(
            "CHAT_MESSAGE", {"orderId": pair.order_id, "text": "x", "attachments": [{"url": url}]}
        )
        assert err["type"] == "ERROR" and err["data"]["code"] == "bad_request", err
    assert (await conn.ack("CHAT_MESSAGE", {"orderId": pair.order_id, "text": "still open"}))["seq"] == 1
