import type { Authenticate, Authenticated, ClientEvents, ServerFrame } from "./generated/protocol.js";
import { type BackoffOptions, backoffDelay } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { GigwireError, errorOf, isRefusal } from "./errors.js";
import type { TokenProvider } from "./rest.js";
import type { Acks, ClientEventMap, ConnectionState, WebSocketConstructor, WebSocketLike } from "./types.js";

export interface ConnectionOptions {
  /** The /ws address ("wss://host/ws"), or several tried in turn when one cannot be reached. */
  url: string | string[];
  /** Gives (and refreshes) the access token: a Session from GigwireRest.session(), or your own. */
  tokens: TokenProvider;
  /** The WebSocket constructor; default globalThis.WebSocket (Node: pass the `ws` package). */
  WebSocket?: WebSocketConstructor;
  /** Reconnect delays (default 500 ms doubling to 30 s, with jitter). */
  backoff?: BackoffOptions;
  /** How long a request waits for its ACK (default 10 s); a chat send then drops the connection. */
  requestTimeoutMs?: number;
  /** A PING is sent after this long without a frame from the server (default 20 s)... */
  pingIntervalMs?: number;
  /** ...and the connection dropped when no frame comes within this long after it (default 10 s). */
  pongTimeoutMs?: number;
}

interface Pending {
  resolve: (data: never) => void;
  reject: (e: GigwireError) => void;
  timer: ReturnType<typeof setTimeout>;
}

// Close codes after which reconnecting cannot help: the client sent something the server refuses.
const FATAL_CLOSES = new Set([1002, 1007, 1009]);
// The server's largest client frame (WS_MAX_FRAME_BYTES' default): a larger one would close the
// connection with 1009, so it is refused here as too_large instead.
const MAX_FRAME_BYTES = 65_536;
const OPEN = 1;

/**
 * One logical /ws connection, kept up: authentication with the token provider (refreshed on
 * SESSION_EXPIRING and re-AUTHENTICATEd on the same socket, or after a 4401), reconnects with
 * jittered backoff that honour the close codes, liveness PINGs, and requests answered by ACK or
 * ERROR. GigwireClient adds what rides on it (chats, the feed, sends) through the hooks below.
 */
export abstract class Connection extends Emitter<ClientEventMap> {
  private readonly urls: string[];
  private tokens: TokenProvider;
  private readonly WS: WebSocketConstructor;
  private readonly backoff: BackoffOptions;
  private readonly timing: { requestTimeoutMs: number; pingIntervalMs: number; pongTimeoutMs: number };
  private ws: WebSocketLike | null = null;
  private gen = 0; // increases with every connection attempt: stale callbacks check it
  private urlIndex = 0;
  private attempt = 0;
  private liveSince = 0;
  protected live = false;
  protected stopped = true;
  private currentState: ConnectionState = "idle";
  private reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setTimeout> | undefined;
  private refSeq = 0;
  private readonly pending = new Map<string, Pending>();
  private me: string | undefined;
  private freshToken: string | undefined; // from the refresh after a 4401: the next connection's

  constructor(options: ConnectionOptions) {
    super();
    this.urls = Array.isArray(options.url) ? [...options.url] : [options.url];
    if (!this.urls.length) throw new GigwireError("closed", "No /ws url given.");
    this.tokens = options.tokens;
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new GigwireError("closed", "No WebSocket on this platform: pass options.WebSocket (Node: the ws package).");
    this.WS = WS;
    this.backoff = options.backoff ?? {};
    this.timing = {
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      pingIntervalMs: options.pingIntervalMs ?? 20_000,
      pongTimeoutMs: options.pongTimeoutMs ?? 10_000,
    };
  }

  /** What the first AUTHENTICATE carries besides the token (sinceFeedSeq). */
  protected abstract authExtras(): Omit<Authenticate, "token">;
  /** The connection is authenticated (a new socket, not a renewal). */
  protected abstract onLive(auth: Authenticated): void;
  /** The connection is gone (pending requests already failed). */
  protected abstract onLost(): void;
  /** The server closed for a client bug: the client stops for good. */
  protected abstract onFatal(code: number): void;
  /** A server frame other than the answers, AUTHENTICATED, SESSION_EXPIRING and ERROR. */
  protected abstract onEvent(frame: ServerFrame): void;

  get state(): ConnectionState {
    return this.currentState;
  }

  /** The authenticated user's id (after the first AUTHENTICATED). */
  get userId(): string | undefined {
    return this.me;
  }

  /** Open the connection (again, after close(), disconnect() or `unauthorized`); reconnects by itself from then on. */
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
    this.shut();
    this.setState("idle");
  }

  /** Close for good: pending requests and unsent messages are rejected with `closed`. */
  close(): void {
    this.shut();
    this.setState("closed");
  }

  private shut(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    const ws = this.ws;
    if (ws) {
      this.detach(ws);
      quietly(() => ws.close(1000));
    }
    this.lost();
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
        reject(new GigwireError("timeout", `No answer to ${type} in ${this.timing.requestTimeoutMs} ms.`));
      }, this.timing.requestTimeoutMs);
      this.pending.set(ref, { resolve: resolve as (d: never) => void, reject, timer });
      this.sendRaw(type, data, ref);
    });
  }

  // ---- the connection

  protected setState(state: ConnectionState): void {
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
      this.sendRaw("AUTHENTICATE", { ...this.authExtras(), token });
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

  protected sendRaw(type: string, data?: unknown, ref?: string): void {
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
  protected drop(reason: string): void {
    const ws = this.ws;
    if (!ws) return;
    this.detach(ws);
    quietly(() => (ws.terminate ? ws.terminate() : ws.close(4000, reason)));
    this.closed(null, 1006, reason);
  }

  /** Every pending request fails with `disconnected`; then the subclass forgets per-connection state. */
  protected lost(): void {
    this.live = false;
    clearTimeout(this.pingTimer);
    for (const [ref, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new GigwireError("disconnected", "The connection was lost before the answer."));
      this.pending.delete(ref);
    }
    this.onLost();
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
      this.pingTimer = setTimeout(() => this.drop("no PONG"), this.timing.pongTimeoutMs);
    }, this.timing.pingIntervalMs);
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
}

/** Run `f`, ignoring what it throws (closing a socket that is already gone). */
function quietly(f: () => void): void {
  try {
    f();
  } catch {
    /* already closed */
  }
}

function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    n += c < 0x80 ? 1 : c < 0x800 ? 2 : c >= 0xd800 && c < 0xdc00 ? (i++, 4) : 3;
  }
  return n;
}
