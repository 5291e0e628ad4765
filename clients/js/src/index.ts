// @gigwire/client: the TypeScript SDK of gigwire's realtime hub (/ws) and its login REST calls.
export { GigwireClient, type ClientOptions } from "./client.js";
export type { ConnectionOptions } from "./connection.js";
export { GigwireRest, Session, tokenExpiry, type FetchLike, type Login, type MessagePage, type RestOptions, type TokenProvider } from "./rest.js";
export { GigwireError, type GigwireErrorCode } from "./errors.js";
export { backoffDelay, type BackoffOptions } from "./backoff.js";
export { randomId } from "./ids.js";
export {
  FEED_TYPES,
  type Acks,
  type ClientEventMap,
  type ConnectionState,
  type Disconnect,
  type FeedEvent,
  type FeedType,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./types.js";
export * from "./generated/protocol.js";
