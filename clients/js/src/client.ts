import type { Attachment, ChatAck, ChatMessage, ClientEvents, ServerFrame, SubscribeAck } from "./generated/protocol.js";
import { type BackoffOptions, backoffDelay } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { GigwireError } from "./errors.js";
import { randomId } from "./ids.js";
import type { TokenProvider } from "./rest.js";
import {
  type Acks,
  type ClientEventMap,
  type ConnectionState,
  FEED_TYPES,
  type FeedEvent,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./types.js";

export interface ClientOptions {
  /** The /ws address ("wss://host/ws"), or several tried in turn when one cannot be reached. */
  url: string | string[];
  /** Gives (and refreshes) the access token: a Session from GigwireRest.session(), or your own. */
  tokens: TokenProvider;
  /** The WebSocket constructor; default globalThis.WebSocket (Node: pass the `ws` package). */
  WebSocket?: WebSocketConstructor;
  /** Resume the user's feed after this feedSeq on the first connection (later ones use the last seen). */
  sinceFeedSeq?: number;
  /** Reconnect delays (default 500 ms doubling to 30 s, with jitter). */
  backoff?: BackoffOptions;
  /** Chat messages waiting to be acknowledged at most (default 200); more are refused with queue_full. */
  queueLimit?: number;
  /** How long a request waits for its ACK (default 10 s); a chat send then drops the connection. */
  requestTimeoutMs?: number;
  /** A PING is sent after this long without a frame from the server (default 20 s)... */
  pingIntervalMs?: number;
  /** ...and the connection dropped when no frame comes within this long after it (default 10 s). */
  pongTimeoutMs?: number;
  /** TYPING_START is renewed at most this often while typing() is called (default 2.5 s; the server ends it after 6 s). */
  typingRenewMs?: number;
  /** typing() not called for this long sends TYPING_STOP (default 4 s). */
  typingIdleMs?: number;
}

interface Pending {
  resolve: (data: never) => void;
  reject: (e: GigwireError) => void;
  timer: ReturnType<typeof setTimeout>;
}

interface Chat {
  lastSeq: number | undefined; // the last seq delivered to the app (undefined: none known yet)
  resyncing: boolean; // a SUBSCRIBE_CHAT is on its way: gaps are filled by its replay
  waiters: Array<{ resolve: (ack: SubscribeAck) => void; reject: (e: GigwireError) => void }>;
}

interface ReadMark {
  sent: number; // the highest seq sent (or acknowledged) as read
  wanted: { messageId: string; seq: number } | undefined; // to send when live
}

interface OutItem {
  data: ClientEvents["CHAT_MESSAGE"] & { clientMsgId: string };
  resolve: (ack: ChatAck) => void;
  reject: (e: GigwireError) => void;
}

// Close codes after which reconnecting cannot help: the client sent something the server refuses.
const FATAL_CLOSES = new Set([1002, 1007, 1009]);
// The server's largest client frame (WS_MAX_FRAME_BYTES' default): a larger one would close the
// connection with 1009, so it is refused here as too_large instead.
const MAX_FRAME_BYTES = 65_536;
const OPEN = 1;

/**
 * A realtime client of gigwire's /ws protocol (docs/protocol.md) with the hard parts done:
 * authentication with token refresh, reconnect with jittered backoff, resume of the user feed and
 * of every subscribed chat from the last seqs seen, exactly-once sends through clientMsgId resends,
 * an offline queue with a bound, typing throttling and read marks.
 */
export class GigwireClient extends Emitter<ClientEventMap> {
  private readonly urls: string[];
  private tokens: TokenProvider;
  private readonly WS: WebSocketConstructor;
  private readonly opts: Required<Omit<ClientOptions, "url" | "tokens" | "WebSocket" | "sinceFeedSeq" | "backoff">>;
  private readonly backoff: BackoffOptions;
  private ws: WebSocketLike | null = null;
  private gen = 0; // increases with every connection attempt: stale callbacks check it
  private urlIndex = 0;
  private attempt = 0;
  private liveSince = 0;
  private live = false;
  private stopped = true;
  private currentState: ConnectionState = "idle";
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setTimeout> | undefined;
  private pumpTimer: ReturnType<typeof setTimeout> | undefined;
  private refSeq = 0;
  private readonly pending = new Map<string, Pending>();
  private readonly chats = new Map<string, Chat>();
  private readonly reads = new Map<string, ReadMark>();
  private readonly outbox: OutItem[] = [];
  private sending: OutItem | null = null;
  private readonly typingState = new Map<string, { sentAt: number; idle: ReturnType<typeof setTimeout> }>();
  private feedSeq: number | undefined;
  private me: string | undefined;
  private freshToken: string | undefined; // from the refresh after a 4401: the next connection's

  constructor(options: ClientOptions) {
    super();
    this.urls = Array.isArray(options.url) ? [...options.url] : [options.url];
    if (!this.urls.length) throw new GigwireError("closed", "No /ws url given.");
    this.tokens = options.tokens;
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new GigwireError("closed", "No WebSocket on this platform: pass options.WebSocket (Node: the ws package).");
    this.WS = WS;
    this.feedSeq = options.sinceFeedSeq;
    this.backoff = options.backoff ?? {};
    this.opts = {
      queueLimit: options.queueLimit ?? 200,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      pingIntervalMs: options.pingIntervalMs ?? 20_000,
      pongTimeoutMs: options.pongTimeoutMs ?? 10_000,
      typingRenewMs: options.typingRenewMs ?? 2_500,
      typingIdleMs: options.typingIdleMs ?? 4_000,
    };
  }

  get state(): ConnectionState {
    return this.currentState;
  }

  /** The authenticated user's id (after the first AUTHENTICATED). */
  get userId(): string | undefined {
    return this.me;
  }

  /** The last feedSeq handled: persist it and pass it as sinceFeedSeq when the app starts again. */
  get lastFeedSeq(): number | undefined {
    return this.feedSeq;
  }

  /** The last seq delivered in each subscribed order. */
  lastSeqs(): Record<string, number | undefined> {
    return Object.fromEntries([...this.chats].map(([id, c]) => [id, c.lastSeq]));
  }

  /** Chat messages sent but not yet acknowledged, oldest first (shown as "sending…"). */
  pendingSends(): Array<ClientEvents["CHAT_MESSAGE"] & { clientMsgId: string }> {
    return this.outbox.map((item) => ({ ...item.data }));
  }

  /** Open the connection (again, after close() or `unauthorized`); reconnects by itself from then on. */
  connect(): void {
    this.stopped = false;
    if (this.ws || this.currentState === "connecting") return;
    clearTimeout(this.reconnectTimer);
    void this.open();
  }

  /** Use other tokens (after logging in again) and connect with them. */
  setTokens(tokens: TokenProvider): void {
    this.tokens = tokens;
    if (this.currentState === "unauthorized") this.connect();
  }

  /**
   * Close the connection but keep the rest (subscriptions and their last seqs, the last feedSeq,
   * unsent messages, which send() keeps queueing): connect() resumes where this left. For an app
   * going to the background.
   */
  disconnect(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    if (ws) {
      this.detach(ws);
      try {
        ws.close(1000);
      } catch {
        /* already closing */
      }
    }
    this.lost();
    this.setState("idle");
  }

  /** Close for good: pending requests and unsent messages are rejected with `closed`. */
  close(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
    const ws = this.ws;
    if (ws) {
      this.detach(ws);
      try {
        ws.close(1000);
      } catch {
        /* already closing */
      }
      this.lost();
    }
    for (const item of this.outbox.splice(0)) item.reject(new GigwireError("closed", "The client was closed."));
    for (const key of [...this.typingState.keys()]) this.clearTyping(key);
    this.setState("closed");
  }

  /**
   * Join an order's chat; its messages come as "message" events, each once and in seq order. With
   * `sinceSeq` (the last seq the app has, e.g. from history), every later one is replayed first.
   * After a reconnect the client subscribes again from the last seq it delivered. Resolves with
   * the ACK of the first subscription.
   */
  subscribe(orderId: string, options: { sinceSeq?: number } = {}): Promise<SubscribeAck> {
    let chat = this.chats.get(orderId);
    if (!chat) {
      chat = { lastSeq: options.sinceSeq, resyncing: false, waiters: [] };
      this.chats.set(orderId, chat);
    } else if (options.sinceSeq !== undefined && (chat.lastSeq === undefined || options.sinceSeq < chat.lastSeq)) {
      chat.lastSeq = options.sinceSeq;
    }
    const c = chat;
    return new Promise((resolve, reject) => {
      c.waiters.push({ resolve, reject });
      if (this.live) this.subscribeNow(orderId);
    });
  }

  /** Leave an order's chat. */
  unsubscribe(orderId: string): void {
    if (!this.chats.delete(orderId)) return;
    this.clearTyping(orderId);
    if (this.live) this.request("UNSUBSCRIBE_CHAT", { orderId }).catch(() => {});
  }

  /**
   * Send a chat message. It is stored exactly once: kept (up to `queueLimit`) while offline and
   * sent again with the same clientMsgId after a reconnect until acknowledged, one at a time so
   * the order is kept. Resolves with the ACK; rejects on a refusal (bad_request, forbidden,
   * not_found, too_large), queue_full, or close().
   */
  send(orderId: string, text: string, options: { attachments?: Attachment[]; clientMsgId?: string } = {}): Promise<ChatAck> {
    if (this.currentState === "closed") return Promise.reject(new GigwireError("closed", "The client is closed."));
    if (this.outbox.length >= this.opts.queueLimit) {
      return Promise.reject(new GigwireError("queue_full", `${this.outbox.length} messages wait to be sent already.`));
    }
    const data: OutItem["data"] = { orderId, text, clientMsgId: options.clientMsgId ?? randomId() };
    if (options.attachments) data.attachments = options.attachments;
    this.stopTyping(orderId);
    return new Promise((resolve, reject) => {
      this.outbox.push({ data, resolve, reject });
      this.pump();
    });
  }

  /** Move the read mark of an order up to a message (never down; sent once, when live). */
  markRead(message: Pick<ChatMessage, "orderId" | "id" | "seq">): void {
    let mark = this.reads.get(message.orderId);
    if (!mark) this.reads.set(message.orderId, (mark = { sent: 0, wanted: undefined }));
    if (message.seq <= mark.sent || (mark.wanted && message.seq <= mark.wanted.seq)) return;
    mark.wanted = { messageId: message.id, seq: message.seq };
    this.flushRead(message.orderId);
  }

  /** The user is typing in an order: TYPING_START, renewed at most every typingRenewMs; TYPING_STOP after typingIdleMs of quiet. */
  typing(orderId: string): void {
    if (!this.live || !this.chats.has(orderId)) return;
    const now = Date.now();
    const t = this.typingState.get(orderId);
    if (t) clearTimeout(t.idle);
    const sentAt = t && now - t.sentAt < this.opts.typingRenewMs ? t.sentAt : now;
    if (sentAt === now) this.sendRaw("TYPING_START", { orderId });
    this.typingState.set(orderId, { sentAt, idle: setTimeout(() => this.stopTyping(orderId), this.opts.typingIdleMs) });
  }

  /** The user stopped typing (sending a message stops it too). */
  stopTyping(orderId: string): void {
    if (this.clearTyping(orderId) && this.live) this.sendRaw("TYPING_STOP", { orderId });
  }

  /**
   * Send a client event with a ref and wait for its ACK (rejects with its ERROR, `disconnected` or
   * `timeout`). Any client event of the generated protocol but AUTHENTICATE and PING (the client
   * sends those itself); the ACK is typed for the events in `Acks`.
   */
  request<K extends Exclude<keyof ClientEvents, "AUTHENTICATE" | "PING">>(
    type: K,
    data: ClientEvents[K],
  ): Promise<K extends keyof Acks ? Acks[K] : unknown> {
    type Answer = K extends keyof Acks ? Acks[K] : unknown;
    if (!this.live || !this.ws) return Promise.reject(new GigwireError("disconnected", "Not connected."));
    const ref = `c${++this.refSeq}`;
    const bytes = utf8Length(JSON.stringify({ type, data, ref }));
    if (bytes > MAX_FRAME_BYTES) {
      return Promise.reject(new GigwireError("too_large", `The ${type} frame is ${bytes} bytes; the server takes ${MAX_FRAME_BYTES}.`));
    }
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new GigwireError("timeout", `No answer to ${type} in ${this.opts.requestTimeoutMs} ms.`));
      }, this.opts.requestTimeoutMs);
      this.pending.set(ref, { resolve: resolve as (d: never) => void, reject, timer });
      this.sendRaw(type, data, ref);
    });
  }

  // ---- the connection

  private setState(state: ConnectionState): void {
    if (state === this.currentState) return;
    this.currentState = state;
    this.emit("state", state);
  }

  private async open(): Promise<void> {
    const gen = ++this.gen;
    this.setState("connecting");
    let token: string;
    try {
      token = this.freshToken ?? (await this.tokens.getToken());
      this.freshToken = undefined;
    } catch (e) {
      if (gen !== this.gen || this.stopped) return;
      if (isRefusal(e)) this.refused(e);
      else this.retry(1006, `no token: ${(e as Error)?.message ?? e}`, false); // e.g. the refresh could not be asked
      return;
    }
    if (gen !== this.gen || this.stopped) return;
    const url = this.urls[this.urlIndex % this.urls.length] as string;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(url) as WebSocketLike;
    } catch (e) {
      this.emit("error", new GigwireError("network", `Cannot open ${url}: ${(e as Error).message}`));
      this.retry(1006, "cannot open", true);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      // The token goes in the first frame rather than the URL, so it stays out of access logs.
      const data: ClientEvents["AUTHENTICATE"] = { token };
      if (this.feedSeq !== undefined) data.sinceFeedSeq = this.feedSeq;
      this.sendRaw("AUTHENTICATE", data);
    };
    ws.onmessage = (ev) => {
      this.heard();
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(ev.data)) as ServerFrame;
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (ev) => this.closed(ws, ev.code, ev.reason);
    ws.onerror = () => {
      /* a close event follows */
    };
  }

  private sendRaw(type: string, data?: unknown, ref?: string): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    const frame: Record<string, unknown> = { type };
    if (data !== undefined) frame.data = data;
    if (ref !== undefined) frame.ref = ref;
    ws.send(JSON.stringify(frame));
  }

  private detach(ws: WebSocketLike): void {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (this.ws === ws) this.ws = null;
  }

  /** Drop the connection at once (no answer in time): it is treated as lost and reconnected. */
  private drop(reason: string): void {
    const ws = this.ws;
    if (!ws) return;
    this.detach(ws);
    try {
      if (ws.terminate) ws.terminate();
      else ws.close(4000, reason);
    } catch {
      /* already gone */
    }
    this.closed(null, 1006, reason);
  }

  /** Every pending request fails with `disconnected`; the chats' typing ends (the server ends it too). */
  private lost(): void {
    this.live = false;
    clearTimeout(this.pingTimer);
    for (const [ref, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new GigwireError("disconnected", "The connection was lost before the answer."));
      this.pending.delete(ref);
    }
    for (const chat of this.chats.values()) chat.resyncing = false;
    for (const key of [...this.typingState.keys()]) this.clearTyping(key);
  }

  private closed(ws: WebSocketLike | null, code: number, reason: string): void {
    if (ws !== null) {
      if (ws !== this.ws) return;
      this.detach(ws);
    }
    const wasLive = this.live;
    const longLived = wasLive && Date.now() - this.liveSince > 5_000;
    this.lost();
    if (this.stopped) return;
    if (FATAL_CLOSES.has(code)) {
      this.stopped = true;
      for (const item of this.outbox.splice(0)) item.reject(new GigwireError("closed", `The server closed the connection (${code}).`));
      this.emit("error", new GigwireError("closed", `The server closed the connection (${code}): ${reason || "a client bug"}.`));
      this.emit("disconnected", { code, reason, willReconnect: false });
      this.setState("closed");
      return;
    }
    if (code === 4401) {
      this.reauthorize(code, reason);
      return;
    }
    if (longLived) this.attempt = 0;
    this.retry(code, reason, !wasLive);
  }

  /** Schedule the next attempt; `rotate`: try the next url (this one failed before going live). */
  private retry(code: number, reason: string, rotate: boolean): void {
    if (rotate) this.urlIndex++;
    let delayMs = backoffDelay(this.attempt++, this.backoff);
    if (code === 1008) delayMs = Math.max(delayMs, 5_000); // told to slow down
    this.emit("disconnected", { code, reason, willReconnect: true, delayMs });
    this.setState("waiting");
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (!this.stopped && !this.ws) void this.open();
    }, delayMs);
  }

  /** 4401: refresh the token, then reconnect; when the refresh is refused, wait for setTokens(). */
  private reauthorize(code: number, reason: string): void {
    const refresh = this.tokens.refresh?.bind(this.tokens);
    if (!refresh) {
      this.refused(new GigwireError("unauthorized", reason || "The token was refused."));
      return;
    }
    this.setState("waiting");
    refresh().then(
      (token) => {
        this.freshToken = token;
        if (!this.stopped) this.retry(code, reason, false);
      },
      (e: unknown) => {
        if (isRefusal(e)) this.refused(e);
        else if (!this.stopped) this.retry(code, reason, false); // the refresh could not be asked: try again later
      },
    );
  }

  private refused(e: unknown): void {
    const err = e instanceof GigwireError ? e : new GigwireError("unauthorized", String((e as Error)?.message ?? e));
    this.emit("error", err);
    this.emit("disconnected", { code: 4401, reason: err.message, willReconnect: false });
    this.setState("unauthorized");
  }

  /** Any frame shows the connection alive: the PING comes only after pingIntervalMs of silence. */
  private heard(): void {
    clearTimeout(this.pingTimer);
    if (!this.live) return;
    this.pingTimer = setTimeout(() => {
      this.sendRaw("PING");
      this.pingTimer = setTimeout(() => this.drop("no PONG"), this.opts.pongTimeoutMs);
    }, this.opts.pingIntervalMs);
  }

  // ---- frames from the server

  private onFrame(frame: ServerFrame): void {
    this.emit("frame", frame);
    if ((frame.type === "ACK" || frame.type === "ERROR") && frame.ref !== undefined) {
      const p = this.pending.get(frame.ref);
      if (p) {
        this.pending.delete(frame.ref);
        clearTimeout(p.timer);
        if (frame.type === "ACK") p.resolve(frame.data as never);
        else p.reject(errorOf(frame.data));
        return;
      }
    }
    switch (frame.type) {
      case "AUTHENTICATED":
        this.me = frame.data.userId;
        if (!this.live) this.wentLive(frame.data.feedSeq);
        this.emit("authenticated", frame.data);
        break;
      case "CHAT_MESSAGE":
        this.onChat(frame.data);
        break;
      case "MESSAGE_READ":
        if (this.chats.has(frame.data.orderId)) this.emit("read", frame.data);
        break;
      case "TYPING_START":
      case "TYPING_STOP":
        this.emit("typing", { ...frame.data, typing: frame.type === "TYPING_START" });
        break;
      case "FEED_EXPIRED":
        this.feedSeq = frame.data.feedSeq;
        this.emit("feedExpired", frame.data);
        break;
      case "SESSION_EXPIRING":
        this.emit("sessionExpiring", frame.data);
        this.renew();
        break;
      case "ERROR":
        this.emit("error", errorOf(frame.data));
        break;
      default:
        if ((FEED_TYPES as readonly string[]).includes(frame.type)) this.onFeed(frame as FeedEvent);
    }
  }

  private wentLive(feedSeq: number): void {
    this.live = true;
    this.liveSince = Date.now();
    if (this.feedSeq === undefined) this.feedSeq = feedSeq; // live events follow from here
    this.setState("live");
    this.heard();
    for (const orderId of this.chats.keys()) this.subscribeNow(orderId);
    for (const orderId of this.reads.keys()) this.flushRead(orderId);
    this.pump();
  }

  private renew(): void {
    const ws = this.ws;
    const refresh = this.tokens.refresh?.bind(this.tokens);
    if (!refresh) return; // the server ends the session at expiry (4401)
    refresh().then(
      (token) => {
        if (this.ws === ws && this.live) this.sendRaw("AUTHENTICATE", { token });
      },
      (e: unknown) => this.emit("error", e instanceof GigwireError ? e : new GigwireError("unauthorized", String(e))),
    );
  }

  private onFeed(event: FeedEvent): void {
    const seq = event.data.feedSeq;
    if (typeof seq === "number") {
      if (this.feedSeq !== undefined && seq <= this.feedSeq) return; // seen already (a replay's overlap)
      this.feedSeq = seq;
    }
    this.emit("feed", event);
  }

  private onChat(m: ChatMessage): void {
    const chat = this.chats.get(m.orderId);
    if (!chat) return;
    if (chat.lastSeq !== undefined) {
      if (m.seq <= chat.lastSeq) return; // a duplicate: at-least-once delivery
      if (m.seq > chat.lastSeq + 1) {
        // A gap: ask for a replay from the last seq delivered; it brings this one too, in order.
        if (!chat.resyncing) this.subscribeNow(m.orderId);
        return;
      }
    }
    chat.lastSeq = m.seq;
    this.emit("message", m);
  }

  private subscribeNow(orderId: string): void {
    const chat = this.chats.get(orderId);
    if (!chat) return;
    const data: ClientEvents["SUBSCRIBE_CHAT"] = { orderId };
    if (chat.lastSeq !== undefined) data.sinceSeq = chat.lastSeq;
    chat.resyncing = true;
    this.request("SUBSCRIBE_CHAT", data).then(
      (ack) => {
        if (this.chats.get(orderId) !== chat) return;
        chat.resyncing = false;
        // Everything up to ack.lastSeq was replayed before the ACK (or not asked for).
        if (chat.lastSeq === undefined || ack.lastSeq > chat.lastSeq) chat.lastSeq = ack.lastSeq;
        for (const w of chat.waiters.splice(0)) w.resolve(ack);
      },
      (e: GigwireError) => {
        if (this.chats.get(orderId) !== chat) return;
        chat.resyncing = false;
        if (e.code === "disconnected") return; // subscribed again once live
        if (e.code === "internal" || e.code === "rate_limited" || e.code === "timeout") {
          setTimeout(() => this.live && this.chats.get(orderId) === chat && this.subscribeNow(orderId), e.retryAfterMs ?? 1_000);
          return;
        }
        this.chats.delete(orderId); // forbidden, not_found, bad_request: not a chat of this user
        for (const w of chat.waiters.splice(0)) w.reject(e);
        this.emit("error", e);
      },
    );
  }

  private flushRead(orderId: string): void {
    const mark = this.reads.get(orderId);
    const wanted = mark?.wanted;
    if (!mark || !wanted || !this.live) return;
    mark.wanted = undefined;
    const before = mark.sent;
    mark.sent = Math.max(mark.sent, wanted.seq);
    this.request("MESSAGE_READ", { messageId: wanted.messageId }).then(
      (ack) => {
        mark.sent = Math.max(mark.sent, ack.seq);
      },
      (e: GigwireError) => {
        // Lost with the connection: wanted again, sent when live.
        if (e.code === "disconnected" || e.code === "timeout") {
          if (!mark.wanted || mark.wanted.seq < wanted.seq) mark.wanted = wanted;
          mark.sent = before;
        }
      },
    );
  }

  private clearTyping(orderId: string): boolean {
    const t = this.typingState.get(orderId);
    if (!t) return false;
    clearTimeout(t.idle);
    this.typingState.delete(orderId);
    return true;
  }

  // ---- sending chat messages, one at a time

  private pump(): void {
    if (!this.live || this.sending || this.pumpTimer !== undefined) return;
    const item = this.outbox[0];
    if (!item) return;
    this.sending = item;
    this.request("CHAT_MESSAGE", item.data).then(
      (ack) => {
        this.sending = null;
        this.outbox.shift();
        item.resolve(ack);
        this.pump();
      },
      (e: GigwireError) => {
        this.sending = null;
        if (e.code === "disconnected") return; // sent again, same clientMsgId, once live
        if (e.code === "timeout") {
          this.drop("no ACK"); // a silent connection: reconnect and resend
          return;
        }
        if (e.code === "internal" || e.code === "rate_limited") {
          // Not stored (or not confirmed): the same clientMsgId again after a pause, still first in line.
          this.pumpTimer = setTimeout(() => {
            this.pumpTimer = undefined;
            this.pump();
          }, e.retryAfterMs ?? 1_000);
          return;
        }
        this.outbox.shift();
        item.reject(e);
        this.pump();
      },
    );
  }
}

/** The server refused the login (not: could not be asked). */
function isRefusal(e: unknown): e is GigwireError {
  return e instanceof GigwireError && (e.code === "unauthorized" || e.status === 401);
}

function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? (i++, 4) : 3;
  }
  return n;
}

function errorOf(data: { code: GigwireError["code"]; message: string; retryAfterMs?: number | null }): GigwireError {
  const extra: { retryAfterMs?: number } = {};
  if (typeof data.retryAfterMs === "number") extra.retryAfterMs = data.retryAfterMs;
  return new GigwireError(data.code, data.message, extra);
}
