"""gigwire_client: an asyncio client of gigwire's realtime hub (raw WebSocket /ws) with token
renewal, reconnects, resume of the feed and of chats, and exactly-once chat sends."""

from gigwire_client.client import GigwireClient
from gigwire_client.errors import AuthError, ClosedError, GigwireError
from gigwire_client.events import (
    Authenticated,
    ChatMessage,
    ConversationUpdated,
    Event,
    FeedEvent,
    FeedExpired,
    NewApplication,
    Notification,
    OrderUpdate,
    ReadReceipt,
    ServerError,
    SessionExpiring,
    StateChange,
    Typing,
)
from gigwire_client.outbox import ChatAck
from gigwire_client.rest import HistoryPage, Login, RestClient, Tokens
from gigwire_client.tokens import RefreshingTokens, StaticToken, TokenProvider

__all__ = [
    "AuthError",
    "Authenticated",
    "ChatAck",
    "ChatMessage",
    "ClosedError",
    "ConversationUpdated",
    "Event",
    "FeedEvent",
    "FeedExpired",
    "GigwireClient",
    "GigwireError",
    "HistoryPage",
    "Login",
    "NewApplication",
    "Notification",
    "OrderUpdate",
    "ReadReceipt",
    "RefreshingTokens",
    "RestClient",
    "ServerError",
    "SessionExpiring",
    "StateChange",
    "StaticToken",
    "TokenProvider",
    "Tokens",
    "Typing",
]
