import type {
  Authenticated,
  ChatAck,
  ChatMessage,
  ConversationUpdated,
  FeedExpired,
  OrderAck,
  ReadAck,
  ReadReceipt,
  ServerEvents,
  ServerFrame,
  SessionExpiring,
  SubscribeAck,
  Typing,
} from "./generated/protocol.js";
import type { GigwireError } from "./errors.js";

/**
 * The ACK data of each client event (docs/protocol.md, "ACK and ERROR"). Written by hand: the
 * AsyncAPI document gives ACK as one of these shapes without saying which event gets which; the
 * names come from the generated file, so a renamed shape fails the build.
 */
export interface Acks {
  SUBSCRIBE_CHAT: SubscribeAck;
  UNSUBSCRIBE_CHAT: OrderAck;
  CHAT_MESSAGE: ChatAck;
  MESSAGE_READ: ReadAck;
  TYPING_START: OrderAck;
  TYPING_STOP: OrderAck;
}

/** The events of the user's feed: each carries a gapless per-user `feedSeq`. */
export const FEED_TYPES = ["ORDER_UPDATE", "NEW_APPLICATION", "NOTIFICATION"] as const;
export type FeedType = (typeof FEED_TYPES)[number];
export type FeedEvent = { [K in FeedType]: { type: K; data: ServerEvents[K] & { feedSeq: number } } }[FeedType];

/**
 * Where the connection is:
 * - `idle`: not started (call connect());
 * - `connecting`: opening the socket and authenticating;
 * - `live`: authenticated; subscriptions and sends flow;
 * - `waiting`: lost, reconnecting after a backoff delay;
 * - `unauthorized`: the token was refused and could not be refreshed: log in again, then
 *   setTokens() (no reconnect until then);
 * - `closed`: close() was called, or the server closed for a client bug (1002, 1007, 1009).
 */
export type ConnectionState = "idle" | "connecting" | "live" | "waiting" | "unauthorized" | "closed";

/** How a connection ended. */
export interface Disconnect {
  code: number;
  reason: string;
  willReconnect: boolean;
  /** Milliseconds until the next attempt, when one is scheduled. */
  delayMs?: number;
}

/** What a GigwireClient emits (client.on(name, handler)). */
export interface ClientEventMap {
  state: ConnectionState;
  /** Each AUTHENTICATED (also after a re-authentication with a refreshed token). */
  authenticated: Authenticated;
  /** A chat message of a subscribed order: each once, in seq order, without gaps. */
  message: ChatMessage;
  /** A read mark moved in a subscribed order. */
  read: ReadReceipt;
  /** The other party started (typing: true) or stopped typing. */
  typing: Typing & { typing: boolean };
  /** An event of the user's feed: each once, in feedSeq order, across reconnects. */
  feed: FeedEvent;
  /** The feed could not be resumed (events no longer kept): refetch state over REST. */
  feedExpired: FeedExpired;
  /**
   * While watchConversations(true): a message in one of the user's chats this client has not
   * subscribed to (best effort, not replayed: refetch GET /api/conversations on "authenticated").
   */
  conversation: ConversationUpdated;
  /** The token expires soon; the client refreshes it and re-authenticates by itself. */
  sessionExpiring: SessionExpiring;
  /** A server ERROR not answering a request of yours, a refused token, or a fatal close. */
  error: GigwireError;
  disconnected: Disconnect;
  /** Every frame the server sends, typed, before the client handles it. */
  frame: ServerFrame;
}

/** The part of a WebSocket the client uses: the browser's, React Native's, or the `ws` package's. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  /** `ws` (Node) only: drop the socket without a closing handshake. */
  terminate?(): void;
}

/** A WebSocket constructor: `WebSocket` in browsers and React Native, `require("ws")` in Node. */
export type WebSocketConstructor = new (url: string) => unknown;
