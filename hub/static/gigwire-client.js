// @gigwire/client (clients/js): built by scripts/build.mjs from TypeScript; do not edit.

// src/backoff.ts
function backoffDelay(attempt, options = {}, random = Math.random) {
  const min = options.minMs ?? 500;
  const max = options.maxMs ?? 3e4;
  const step = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + random() * (step / 2));
}

// src/emitter.ts
var Emitter = class {
  constructor() {
    this.handlers = /* @__PURE__ */ new Map();
  }
  /** Call `handler` for every `event`; returns a function that removes it. */
  on(event, handler) {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, set = /* @__PURE__ */ new Set());
    set.add(handler);
    return () => this.off(event, handler);
  }
  off(event, handler) {
    this.handlers.get(event)?.delete(handler);
  }
  emit(event, value) {
    const set = this.handlers.get(event);
    if (!set) return;
    for (const handler of [...set]) {
      try {
        handler(value);
      } catch (e) {
        setTimeout(() => {
          throw e;
        }, 0);
      }
    }
  }
};

// src/errors.ts
var GigwireError = class extends Error {
  constructor(code, message, extra = {}) {
    super(message);
    this.name = "GigwireError";
    this.code = code;
    if (extra.status !== void 0) this.status = extra.status;
    if (extra.details !== void 0) this.details = extra.details;
    if (extra.retryAfterMs !== void 0) this.retryAfterMs = extra.retryAfterMs;
  }
};
function isRefusal(e) {
  return e instanceof GigwireError && (e.code === "unauthorized" || e.status === 401);
}
function errorOf(data) {
  const extra = {};
  if (typeof data.retryAfterMs === "number") extra.retryAfterMs = data.retryAfterMs;
  return new GigwireError(data.code, data.message, extra);
}

// src/connection.ts
var FATAL_CLOSES = /* @__PURE__ */ new Set([1002, 1007, 1009]);
var MAX_FRAME_BYTES = 65536;
var OPEN = 1;
var Connection = class extends Emitter {
  // from the refresh after a 4401: the next connection's
  constructor(options) {
    super();
    this.ws = null;
    this.gen = 0;
    // increases with every connection attempt: stale callbacks check it
    this.urlIndex = 0;
    this.attempt = 0;
    this.liveSince = 0;
    this.live = false;
    this.stopped = true;
    this.currentState = "idle";
    this.refSeq = 0;
    this.pending = /* @__PURE__ */ new Map();
    this.urls = Array.isArray(options.url) ? [...options.url] : [options.url];
    if (!this.urls.length) throw new GigwireError("closed", "No /ws url given.");
    this.tokens = options.tokens;
    const WS = options.WebSocket ?? globalThis.WebSocket;
    if (!WS) throw new GigwireError("closed", "No WebSocket on this platform: pass options.WebSocket (Node: the ws package).");
    this.WS = WS;
    this.backoff = options.backoff ?? {};
    this.timing = {
      requestTimeoutMs: options.requestTimeoutMs ?? 1e4,
      pingIntervalMs: options.pingIntervalMs ?? 2e4,
      pongTimeoutMs: options.pongTimeoutMs ?? 1e4
    };
  }
  get state() {
    return this.currentState;
  }
  /** The authenticated user's id (after the first AUTHENTICATED). */
  get userId() {
    return this.me;
  }
  /** Open the connection (again, after close(), disconnect() or `unauthorized`); reconnects by itself from then on. */
  connect() {
    this.stopped = false;
    if (this.ws || this.currentState === "connecting") return;
    clearTimeout(this.reconnectTimer);
    void this.open();
  }
  /** Use other tokens (after logging in again) and connect with them. */
  setTokens(tokens) {
    this.tokens = tokens;
    if (this.currentState === "unauthorized") this.connect();
  }
  /**
   * Close the connection but keep the rest (subscriptions and their last seqs, the last feedSeq,
   * unsent messages, which send() keeps queueing): connect() resumes where this left. For an app
   * going to the background.
   */
  disconnect() {
    this.shut();
    this.setState("idle");
  }
  /** Close for good: pending requests and unsent messages are rejected with `closed`. */
  close() {
    this.shut();
    this.setState("closed");
  }
  shut() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    if (ws) {
      this.detach(ws);
      quietly(() => ws.close(1e3));
    }
    this.lost();
  }
  /**
   * Send a client event with a ref and wait for its ACK (rejects with its ERROR, `disconnected` or
   * `timeout`). Any client event of the generated protocol but AUTHENTICATE and PING (the client
   * sends those itself); the ACK is typed for the events in `Acks`.
   */
  request(type, data) {
    if (!this.live || !this.ws) return Promise.reject(new GigwireError("disconnected", "Not connected."));
    const ref = `c${++this.refSeq}`;
    const bytes = utf8Length(JSON.stringify({ type, data, ref }));
    if (bytes > MAX_FRAME_BYTES) {
      return Promise.reject(new GigwireError("too_large", `The ${type} frame is ${bytes} bytes; the server takes ${MAX_FRAME_BYTES}.`));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new GigwireError("timeout", `No answer to ${type} in ${this.timing.requestTimeoutMs} ms.`));
      }, this.timing.requestTimeoutMs);
      this.pending.set(ref, { resolve, reject, timer });
      this.sendRaw(type, data, ref);
    });
  }
  // ---- the connection
  setState(state) {
    if (state === this.currentState) return;
    this.currentState = state;
    this.emit("state", state);
  }
  async open() {
    const gen = ++this.gen;
    this.setState("connecting");
    let token;
    try {
      token = this.freshToken ?? await this.tokens.getToken();
      this.freshToken = void 0;
    } catch (e) {
      if (gen !== this.gen || this.stopped) return;
      if (isRefusal(e)) this.refused(e);
      else this.retry(1006, `no token: ${e?.message ?? e}`, false);
      return;
    }
    if (gen !== this.gen || this.stopped) return;
    const url = this.urls[this.urlIndex % this.urls.length];
    let ws;
    try {
      ws = new this.WS(url);
    } catch (e) {
      this.emit("error", new GigwireError("network", `Cannot open ${url}: ${e.message}`));
      this.retry(1006, "cannot open", true);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.sendRaw("AUTHENTICATE", { ...this.authExtras(), token });
    };
    ws.onmessage = (ev) => {
      this.heard();
      let frame;
      try {
        frame = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      this.onFrame(frame);
    };
    ws.onclose = (ev) => this.closed(ws, ev.code, ev.reason);
    ws.onerror = () => {
    };
  }
  sendRaw(type, data, ref) {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN) return;
    const frame = { type };
    if (data !== void 0) frame.data = data;
    if (ref !== void 0) frame.ref = ref;
    ws.send(JSON.stringify(frame));
  }
  detach(ws) {
    ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
    if (this.ws === ws) this.ws = null;
  }
  /** Drop the connection at once (no answer in time): it is treated as lost and reconnected. */
  drop(reason) {
    const ws = this.ws;
    if (!ws) return;
    this.detach(ws);
    quietly(() => ws.terminate ? ws.terminate() : ws.close(4e3, reason));
    this.closed(null, 1006, reason);
  }
  /** Every pending request fails with `disconnected`; then the subclass forgets per-connection state. */
  lost() {
    this.live = false;
    clearTimeout(this.pingTimer);
    for (const [ref, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new GigwireError("disconnected", "The connection was lost before the answer."));
      this.pending.delete(ref);
    }
    this.onLost();
  }
  closed(ws, code, reason) {
    if (ws !== null) {
      if (ws !== this.ws) return;
      this.detach(ws);
    }
    const wasLive = this.live;
    const longLived = wasLive && Date.now() - this.liveSince > 5e3;
    this.lost();
    if (this.stopped) return;
    if (FATAL_CLOSES.has(code)) {
      this.stopped = true;
      this.onFatal(code);
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
  retry(code, reason, rotate) {
    if (rotate) this.urlIndex++;
    let delayMs = backoffDelay(this.attempt++, this.backoff);
    if (code === 1008) delayMs = Math.max(delayMs, 5e3);
    this.emit("disconnected", { code, reason, willReconnect: true, delayMs });
    this.setState("waiting");
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (!this.stopped && !this.ws) void this.open();
    }, delayMs);
  }
  /** 4401: refresh the token, then reconnect; when the refresh is refused, wait for setTokens(). */
  reauthorize(code, reason) {
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
      (e) => {
        if (isRefusal(e)) this.refused(e);
        else if (!this.stopped) this.retry(code, reason, false);
      }
    );
  }
  refused(e) {
    const err = e instanceof GigwireError ? e : new GigwireError("unauthorized", String(e?.message ?? e));
    this.emit("error", err);
    this.emit("disconnected", { code: 4401, reason: err.message, willReconnect: false });
    this.setState("unauthorized");
  }
  /** Any frame shows the connection alive: the PING comes only after pingIntervalMs of silence. */
  heard() {
    clearTimeout(this.pingTimer);
    if (!this.live) return;
    this.pingTimer = setTimeout(() => {
      this.sendRaw("PING");
      this.pingTimer = setTimeout(() => this.drop("no PONG"), this.timing.pongTimeoutMs);
    }, this.timing.pingIntervalMs);
  }
  // ---- frames from the server
  onFrame(frame) {
    this.emit("frame", frame);
    if ((frame.type === "ACK" || frame.type === "ERROR") && frame.ref !== void 0) {
      const p = this.pending.get(frame.ref);
      if (p) {
        this.pending.delete(frame.ref);
        clearTimeout(p.timer);
        if (frame.type === "ACK") p.resolve(frame.data);
        else p.reject(errorOf(frame.data));
        return;
      }
    }
    switch (frame.type) {
      case "AUTHENTICATED":
        this.me = frame.data.userId;
        if (!this.live) {
          this.live = true;
          this.liveSince = Date.now();
          this.heard();
          this.onLive(frame.data);
          this.setState("live");
        }
        this.emit("authenticated", frame.data);
        break;
      case "SESSION_EXPIRING":
        this.emit("sessionExpiring", frame.data);
        this.renew();
        break;
      case "ERROR":
        this.emit("error", errorOf(frame.data));
        break;
      default:
        this.onEvent(frame);
    }
  }
  renew() {
    const ws = this.ws;
    const refresh = this.tokens.refresh?.bind(this.tokens);
    if (!refresh) return;
    refresh().then(
      (token) => {
        if (this.ws === ws && this.live) this.sendRaw("AUTHENTICATE", { token });
      },
      (e) => this.emit("error", e instanceof GigwireError ? e : new GigwireError("unauthorized", String(e)))
    );
  }
};
function quietly(f) {
  try {
    f();
  } catch {
  }
}
function utf8Length(text) {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    n += c < 128 ? 1 : c < 2048 ? 2 : c >= 55296 && c < 56320 ? (i++, 4) : 3;
  }
  return n;
}

// src/ids.ts
function randomId() {
  const bytes = new Uint8Array(16);
  const c = globalThis.crypto;
  if (c?.getRandomValues) c.getRandomValues(bytes);
  else for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

// src/types.ts
var FEED_TYPES = ["ORDER_UPDATE", "NEW_APPLICATION", "NOTIFICATION"];

// src/client.ts
var GigwireClient = class extends Connection {
  constructor(options) {
    super(options);
    this.chats = /* @__PURE__ */ new Map();
    this.reads = /* @__PURE__ */ new Map();
    this.outbox = [];
    this.sending = null;
    this.typingState = /* @__PURE__ */ new Map();
    this.watching = false;
    this.feedSeq = options.sinceFeedSeq;
    this.opts = {
      queueLimit: options.queueLimit ?? 200,
      typingRenewMs: options.typingRenewMs ?? 2500,
      typingIdleMs: options.typingIdleMs ?? 4e3
    };
  }
  /** The last feedSeq handled: persist it and pass it as sinceFeedSeq when the app starts again. */
  get lastFeedSeq() {
    return this.feedSeq;
  }
  /** The last seq delivered in each subscribed order. */
  lastSeqs() {
    return Object.fromEntries([...this.chats].map(([id, c]) => [id, c.lastSeq]));
  }
  /** Chat messages sent but not yet acknowledged, oldest first (shown as "sending…"). */
  pendingSends() {
    return this.outbox.map((item) => ({ ...item.data }));
  }
  /** Close for good: pending requests and unsent messages are rejected with `closed`. */
  close() {
    clearTimeout(this.pumpTimer);
    this.pumpTimer = void 0;
    super.close();
    for (const item of this.outbox.splice(0)) item.reject(new GigwireError("closed", "The client was closed."));
  }
  /**
   * Join an order's chat; its messages come as "message" events, each once and in seq order. With
   * `sinceSeq` (the last seq the app has, e.g. from history), every later one is replayed first.
   * After a reconnect the client subscribes again from the last seq it delivered. Resolves with
   * the ACK of the first subscription.
   */
  subscribe(orderId, options = {}) {
    let chat = this.chats.get(orderId);
    if (!chat) {
      chat = { lastSeq: options.sinceSeq, resyncing: false, waiters: [] };
      this.chats.set(orderId, chat);
    } else if (options.sinceSeq !== void 0 && (chat.lastSeq === void 0 || options.sinceSeq < chat.lastSeq)) {
      chat.lastSeq = options.sinceSeq;
    }
    const c = chat;
    return new Promise((resolve, reject) => {
      c.waiters.push({ resolve, reject });
      if (this.live) this.subscribeNow(orderId);
    });
  }
  /**
   * Keep a conversation list live: while on, a message in any of the user's chats this client has
   * not subscribed to comes as a "conversation" event (subscribed ones come as "message"). Kept
   * across reconnects: the client asks again each time it is live. Resolves once the server
   * answered (at once when not live: the next connection asks).
   */
  async watchConversations(on = true) {
    if (this.watching === on) return;
    this.watching = on;
    if (this.live) await this.request("WATCH_CONVERSATIONS", { enabled: on }).catch(() => {
    });
  }
  /** Leave an order's chat. */
  unsubscribe(orderId) {
    if (!this.chats.delete(orderId)) return;
    this.clearTyping(orderId);
    if (this.live) this.request("UNSUBSCRIBE_CHAT", { orderId }).catch(() => {
    });
  }
  /**
   * Send a chat message. It is stored exactly once: kept (up to `queueLimit`) while offline and
   * sent again with the same clientMsgId after a reconnect until acknowledged, one at a time so
   * the order is kept. Resolves with the ACK; rejects on a refusal (bad_request, forbidden,
   * not_found, too_large), queue_full, or close().
   */
  send(orderId, text, options = {}) {
    if (this.state === "closed") return Promise.reject(new GigwireError("closed", "The client is closed."));
    if (this.outbox.length >= this.opts.queueLimit) {
      return Promise.reject(new GigwireError("queue_full", `${this.outbox.length} messages wait to be sent already.`));
    }
    const data = { orderId, text, clientMsgId: options.clientMsgId ?? randomId() };
    if (options.attachments) data.attachments = options.attachments;
    this.stopTyping(orderId);
    return new Promise((resolve, reject) => {
      this.outbox.push({ data, resolve, reject });
      this.pump();
    });
  }
  /** Move the read mark of an order up to a message (never down; sent once, when live). */
  markRead(message) {
    let mark = this.reads.get(message.orderId);
    if (!mark) this.reads.set(message.orderId, mark = { sent: 0, wanted: void 0 });
    if (message.seq <= mark.sent || mark.wanted && message.seq <= mark.wanted.seq) return;
    mark.wanted = { messageId: message.id, seq: message.seq };
    this.flushRead(message.orderId);
  }
  /** The user is typing in an order: TYPING_START, renewed at most every typingRenewMs; TYPING_STOP after typingIdleMs of quiet. */
  typing(orderId) {
    if (!this.live || !this.chats.has(orderId)) return;
    const now = Date.now();
    const t = this.typingState.get(orderId);
    if (t) clearTimeout(t.idle);
    const sentAt = t && now - t.sentAt < this.opts.typingRenewMs ? t.sentAt : now;
    if (sentAt === now) this.sendRaw("TYPING_START", { orderId });
    this.typingState.set(orderId, { sentAt, idle: setTimeout(() => this.stopTyping(orderId), this.opts.typingIdleMs) });
  }
  /** The user stopped typing (sending a message stops it too). */
  stopTyping(orderId) {
    if (this.clearTyping(orderId) && this.live) this.sendRaw("TYPING_STOP", { orderId });
  }
  // ---- the hooks of Connection
  authExtras() {
    return this.feedSeq === void 0 ? {} : { sinceFeedSeq: this.feedSeq };
  }
  onLive(auth) {
    if (this.feedSeq === void 0) this.feedSeq = auth.feedSeq;
    for (const orderId of this.chats.keys()) this.subscribeNow(orderId);
    for (const orderId of this.reads.keys()) this.flushRead(orderId);
    if (this.watching) this.request("WATCH_CONVERSATIONS", { enabled: true }).catch(() => {
    });
    this.pump();
  }
  onLost() {
    for (const chat of this.chats.values()) chat.resyncing = false;
    for (const key of [...this.typingState.keys()]) this.clearTyping(key);
  }
  onFatal(code) {
    for (const item of this.outbox.splice(0)) item.reject(new GigwireError("closed", `The server closed the connection (${code}).`));
  }
  onEvent(frame) {
    switch (frame.type) {
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
      case "CONVERSATION_UPDATED":
        this.emit("conversation", frame.data);
        break;
      case "FEED_EXPIRED":
        this.feedSeq = frame.data.feedSeq;
        this.emit("feedExpired", frame.data);
        break;
      default:
        if (FEED_TYPES.includes(frame.type)) this.onFeed(frame);
    }
  }
  onFeed(event) {
    const seq = event.data.feedSeq;
    if (typeof seq === "number") {
      if (this.feedSeq !== void 0 && seq <= this.feedSeq) return;
      this.feedSeq = seq;
    }
    this.emit("feed", event);
  }
  onChat(m) {
    const chat = this.chats.get(m.orderId);
    if (!chat) return;
    if (chat.lastSeq !== void 0) {
      if (m.seq <= chat.lastSeq) return;
      if (m.seq > chat.lastSeq + 1) {
        if (!chat.resyncing) this.subscribeNow(m.orderId);
        return;
      }
    }
    chat.lastSeq = m.seq;
    this.emit("message", m);
  }
  subscribeNow(orderId) {
    const chat = this.chats.get(orderId);
    if (!chat) return;
    const data = { orderId };
    if (chat.lastSeq !== void 0) data.sinceSeq = chat.lastSeq;
    chat.resyncing = true;
    this.request("SUBSCRIBE_CHAT", data).then(
      (ack) => {
        if (this.chats.get(orderId) !== chat) return;
        chat.resyncing = false;
        if (chat.lastSeq === void 0 || ack.lastSeq > chat.lastSeq) chat.lastSeq = ack.lastSeq;
        for (const w of chat.waiters.splice(0)) w.resolve(ack);
      },
      (e) => {
        if (this.chats.get(orderId) !== chat) return;
        chat.resyncing = false;
        if (e.code === "disconnected") return;
        if (e.code === "internal" || e.code === "rate_limited" || e.code === "timeout") {
          setTimeout(() => this.live && this.chats.get(orderId) === chat && this.subscribeNow(orderId), e.retryAfterMs ?? 1e3);
          return;
        }
        this.chats.delete(orderId);
        for (const w of chat.waiters.splice(0)) w.reject(e);
        this.emit("error", e);
      }
    );
  }
  flushRead(orderId) {
    const mark = this.reads.get(orderId);
    const wanted = mark?.wanted;
    if (!mark || !wanted || !this.live) return;
    mark.wanted = void 0;
    const before = mark.sent;
    mark.sent = Math.max(mark.sent, wanted.seq);
    this.request("MESSAGE_READ", { messageId: wanted.messageId }).then(
      (ack) => {
        mark.sent = Math.max(mark.sent, ack.seq);
      },
      (e) => {
        if (e.code === "disconnected" || e.code === "timeout") {
          if (!mark.wanted || mark.wanted.seq < wanted.seq) mark.wanted = wanted;
          mark.sent = before;
        }
      }
    );
  }
  clearTyping(orderId) {
    const t = this.typingState.get(orderId);
    if (!t) return false;
    clearTimeout(t.idle);
    this.typingState.delete(orderId);
    return true;
  }
  // ---- sending chat messages, one at a time
  pump() {
    if (!this.live || this.sending || this.pumpTimer !== void 0) return;
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
      (e) => {
        this.sending = null;
        if (e.code === "disconnected") return;
        if (e.code === "timeout") {
          this.drop("no ACK");
          return;
        }
        if (e.code === "internal" || e.code === "rate_limited") {
          this.pumpTimer = setTimeout(() => {
            this.pumpTimer = void 0;
            this.pump();
          }, e.retryAfterMs ?? 1e3);
          return;
        }
        this.outbox.shift();
        item.reject(e);
        this.pump();
      }
    );
  }
};

// src/rest.ts
var B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
function base64UrlDecode(part) {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const ch of part.replace(/=+$/, "")) {
    const v = B64.indexOf(ch === "+" ? "-" : ch === "/" ? "_" : ch);
    if (v < 0) throw new Error("not base64url");
    value = value << 6 | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode(value >> bits & 255);
    }
  }
  return out;
}
function tokenExpiry(token) {
  try {
    const part = token.split(".")[1];
    if (!part) return void 0;
    const exp = JSON.parse(base64UrlDecode(part)).exp;
    return typeof exp === "number" ? exp * 1e3 : void 0;
  } catch {
    return void 0;
  }
}
var GigwireRest = class {
  constructor(options) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    const f = options.fetch ?? globalThis.fetch;
    if (!f) throw new GigwireError("network", "No fetch on this platform: pass options.fetch.");
    this.fetchFn = (input, init) => f(input, init);
    this.credentials = options.credentials ?? "same-origin";
  }
  /** Any /api route: answers the `data` of `{success, data}` (and the whole body under `body`). */
  async request(method, path, options = {}) {
    const headers = { Accept: "application/json" };
    if (options.body !== void 0) headers["Content-Type"] = "application/json";
    if (options.token) headers.Authorization = `Bearer ${options.token}`;
    const query = Object.entries(options.query ?? {}).filter(([, v]) => v !== void 0).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join("&");
    let resp;
    try {
      const init = { method, headers, credentials: this.credentials };
      if (options.body !== void 0) init.body = JSON.stringify(options.body);
      resp = await this.fetchFn(`${this.baseUrl}${path}${query ? `?${query}` : ""}`, init);
    } catch (e) {
      throw new GigwireError("network", `${method} ${path}: ${e.message}`);
    }
    let body = null;
    try {
      body = await resp.json();
    } catch {
    }
    if (!resp.ok || !body || body.success === false) {
      const err = body?.error ?? {};
      const code = err.code ?? `http_${resp.status}`;
      const extra = { status: resp.status };
      if (err.details) extra.details = err.details;
      throw new GigwireError(code, err.message ?? `${method} ${path} answered ${resp.status}`, extra);
    }
    return { data: body.data, body };
  }
  /** POST /api/auth/send-otp: text a login code to `phone` (E.164). */
  async sendOtp(phone) {
    await this.request("POST", "/api/auth/send-otp", { body: { phone } });
  }
  /** POST /api/auth/verify-otp: log in (and sign up) with the code. */
  async verifyOtp(phone, otp) {
    return (await this.request("POST", "/api/auth/verify-otp", { body: { phone, otp } })).data;
  }
  /** POST /api/auth/refresh: the next token pair. Without `refreshToken`, the cookie is used (browsers). */
  async refresh(refreshToken) {
    const body = refreshToken ? { refreshToken } : {};
    return (await this.request("POST", "/api/auth/refresh", { body })).data;
  }
  /** POST /api/auth/logout: ends the login (its realtime sessions close with 4401). */
  async logout(refreshToken) {
    await this.request("POST", "/api/auth/logout", { body: refreshToken ? { refreshToken } : {} });
  }
  /** GET /api/orders/{id}/messages: a page of the chat, oldest first. */
  async messages(token, orderId, page = {}) {
    const { data, body } = await this.request("GET", `/api/orders/${encodeURIComponent(orderId)}/messages`, {
      token,
      query: { beforeSeq: page.beforeSeq, limit: page.limit }
    });
    return { items: data, nextBeforeSeq: body.nextBeforeSeq ?? null };
  }
  /** A Session for this login: its tokens, refreshed when needed, and authenticated calls. */
  session(login, onChange) {
    return new Session(this, login, onChange);
  }
};
var Session = class {
  constructor(rest, login, onChange) {
    this.rest = rest;
    this.onChange = onChange;
    this.refreshing = null;
    this.login = login;
  }
  get userId() {
    return this.login.user?.id;
  }
  /** The access token, refreshed first when it expires within 30 s (or a quarter of its lifetime,
   * when that is shorter: a short-lived token is not refreshed at every use). */
  async getToken() {
    const exp = tokenExpiry(this.login.token);
    const margin = Math.min(3e4, this.login.expiresIn * 1e3 / 4 || 3e4);
    if (exp !== void 0 && exp - Date.now() < margin) return this.refresh();
    return this.login.token;
  }
  refresh() {
    if (!this.refreshing) {
      this.refreshing = this.rest.refresh(this.login.refreshToken || void 0).then((next) => {
        this.login = { ...next, user: next.user ?? this.login.user };
        this.onChange?.(this.login);
        return this.login.token;
      }).finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }
  /** An authenticated /api call; on 401 the token is refreshed and the call made once more. */
  async request(method, path, options = {}) {
    try {
      return (await this.rest.request(method, path, { ...options, token: await this.getToken() })).data;
    } catch (e) {
      if (!(e instanceof GigwireError) || e.status !== 401) throw e;
      return (await this.rest.request(method, path, { ...options, token: await this.refresh() })).data;
    }
  }
  /** GET /api/orders/{id}/messages with this session's token. */
  async messages(orderId, page = {}) {
    try {
      return await this.rest.messages(await this.getToken(), orderId, page);
    } catch (e) {
      if (!(e instanceof GigwireError) || e.status !== 401) throw e;
      return this.rest.messages(await this.refresh(), orderId, page);
    }
  }
  /** Log out: the login's tokens are revoked and its realtime sessions closed. */
  async logout() {
    await this.rest.logout(this.login.refreshToken || void 0);
  }
};

// src/generated/protocol.ts
var ERROR_CODES = ["bad_request", "forbidden", "internal", "not_found", "rate_limited", "too_large", "unauthorized"];
var CLOSE_CODES = {
  1e3: "normal closure; also the answer to a client's close without a code",
  1001: "the server is shutting down or restarting: reconnect",
  1002: "the client broke RFC 6455 (unmasked frame, RSV bits, bad opcode or continuation)",
  1007: "a text message or close reason that is not UTF-8",
  1008: "the connection kept sending over its rate limits after being told (rate_limited)",
  1009: "a message over WS_MAX_FRAME_BYTES (or in too many fragments)",
  1011: "the server failed handling the connection's frames",
  1013: "too slow a reader: its queue overflowed; reconnect and resume with sinceSeq",
  4401: "no valid token (refused, expired, or too many frames before AUTHENTICATE)",
  4408: "no AUTHENTICATE within WS_AUTH_TIMEOUT seconds"
};
export {
  CLOSE_CODES,
  ERROR_CODES,
  FEED_TYPES,
  GigwireClient,
  GigwireError,
  GigwireRest,
  Session,
  backoffDelay,
  randomId,
  tokenExpiry
};
