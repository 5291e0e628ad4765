import type { ChatMessage } from "./generated/protocol.js";
import { GigwireError } from "./errors.js";

/** A fetch function (the platform's by default). */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface RestOptions {
  /** The server's address, e.g. "https://gigwire.example" (no trailing /api). */
  baseUrl: string;
  /** fetch to use; default globalThis.fetch. */
  fetch?: FetchLike;
  /** Browsers: send and keep the refresh-token cookie ("include" for another origin). Default "same-origin". */
  credentials?: RequestCredentials;
}

/** The answer of verify-otp and refresh. */
export interface Login {
  token: string;
  refreshToken: string;
  /** Seconds the access token lives. */
  expiresIn: number;
  user?: { id: string; [field: string]: unknown };
  isNewUser?: boolean;
}

/** A page of chat history (oldest first) and where to page back from. */
export interface MessagePage {
  items: ChatMessage[];
  /** Pass as beforeSeq for the previous page; null at the start of the chat. */
  nextBeforeSeq: number | null;
}

/** Gives the access token for the realtime connection and renews it. */
export interface TokenProvider {
  /** The current access token. */
  getToken(): string | Promise<string>;
  /** A fresh access token (POST /api/auth/refresh); rejects with `unauthorized` when the login is over. */
  refresh?(): Promise<string>;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** base64url to a string of bytes (JWT payloads are ASCII JSON); no atob, which older React Native lacks. */
function base64UrlDecode(part: string): string {
  let bits = 0;
  let value = 0;
  let out = "";
  for (const ch of part.replace(/=+$/, "")) {
    const v = B64.indexOf(ch === "+" ? "-" : ch === "/" ? "_" : ch);
    if (v < 0) throw new Error("not base64url");
    value = (value << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += String.fromCharCode((value >> bits) & 0xff);
    }
  }
  return out;
}

/** Milliseconds since the epoch when a JWT expires (its `exp`), or undefined when unreadable. */
export function tokenExpiry(token: string): number | undefined {
  try {
    const part = token.split(".")[1];
    if (!part) return undefined;
    const exp = (JSON.parse(base64UrlDecode(part)) as { exp?: unknown }).exp;
    return typeof exp === "number" ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The REST calls a realtime app needs: the phone login (send-otp, verify-otp), token refresh and
 * logout, and chat history. Errors are GigwireError with the server's code, status and details.
 */
export class GigwireRest {
  readonly baseUrl: string;
  private readonly fetchFn: FetchLike;
  private readonly credentials: RequestCredentials;

  constructor(options: RestOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    const f = options.fetch ?? (globalThis.fetch as FetchLike | undefined);
    if (!f) throw new GigwireError("network", "No fetch on this platform: pass options.fetch.");
    // Called as a plain function: browsers refuse a fetch called as a method of another object.
    this.fetchFn = (input, init) => f(input, init);
    this.credentials = options.credentials ?? "same-origin";
  }

  /** Any /api route: answers the `data` of `{success, data}` (and the whole body under `body`). */
  async request<T>(
    method: string,
    path: string,
    options: { body?: unknown; token?: string; query?: Record<string, string | number | undefined> } = {},
  ): Promise<{ data: T; body: Record<string, unknown> }> {
    const headers: Record<string, string> = { Accept: "application/json" };
    if (options.body !== undefined) headers["Content-Type"] = "application/json";
    if (options.token) headers.Authorization = `Bearer ${options.token}`;
    const query = Object.entries(options.query ?? {})
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`)
      .join("&");
    let resp: Response;
    try {
      const init: RequestInit = { method, headers, credentials: this.credentials };
      if (options.body !== undefined) init.body = JSON.stringify(options.body);
      resp = await this.fetchFn(`${this.baseUrl}${path}${query ? `?${query}` : ""}`, init);
    } catch (e) {
      throw new GigwireError("network", `${method} ${path}: ${(e as Error).message}`);
    }
    let body: Record<string, unknown> | null = null;
    try {
      body = (await resp.json()) as Record<string, unknown>;
    } catch {
      /* not JSON: reported below */
    }
    if (!resp.ok || !body || body.success === false) {
      const err = (body?.error ?? {}) as { code?: string; message?: string; details?: Record<string, unknown> };
      const code = (err.code ?? `http_${resp.status}`) as GigwireError["code"];
      const extra: { status: number; details?: Record<string, unknown> } = { status: resp.status };
      if (err.details) extra.details = err.details;
      throw new GigwireError(code, err.message ?? `${method} ${path} answered ${resp.status}`, extra);
    }
    return { data: body.data as T, body };
  }

  /** POST /api/auth/send-otp: text a login code to `phone` (E.164). */
  async sendOtp(phone: string): Promise<void> {
    await this.request("POST", "/api/auth/send-otp", { body: { phone } });
  }

  /** POST /api/auth/verify-otp: log in (and sign up) with the code. */
  async verifyOtp(phone: string, otp: string): Promise<Login> {
    return (await this.request<Login>("POST", "/api/auth/verify-otp", { body: { phone, otp } })).data;
  }

  /** POST /api/auth/refresh: the next token pair. Without `refreshToken`, the cookie is used (browsers). */
  async refresh(refreshToken?: string): Promise<Login> {
    const body = refreshToken ? { refreshToken } : {};
    return (await this.request<Login>("POST", "/api/auth/refresh", { body })).data;
  }

  /** POST /api/auth/logout: ends the login (its realtime sessions close with 4401). */
  async logout(refreshToken?: string): Promise<void> {
    await this.request("POST", "/api/auth/logout", { body: refreshToken ? { refreshToken } : {} });
  }

  /** GET /api/orders/{id}/messages: a page of the chat, oldest first. */
  async messages(token: string, orderId: string, page: { beforeSeq?: number; limit?: number } = {}): Promise<MessagePage> {
    const { data, body } = await this.request<ChatMessage[]>("GET", `/api/orders/${encodeURIComponent(orderId)}/messages`, {
      token,
      query: { beforeSeq: page.beforeSeq, limit: page.limit },
    });
    return { items: data, nextBeforeSeq: (body.nextBeforeSeq as number | null | undefined) ?? null };
  }

  /** A Session for this login: its tokens, refreshed when needed, and authenticated calls. */
  session(login: Login, onChange?: (login: Login) => void): Session {
    return new Session(this, login, onChange);
  }
}

/**
 * One login's tokens: a TokenProvider for GigwireClient, and REST calls that refresh once on 401.
 * Refreshes are single-flight: the server revokes a login whose refresh token is used twice.
 */
export class Session implements TokenProvider {
  private login: Login;
  private refreshing: Promise<string> | null = null;

  constructor(
    readonly rest: GigwireRest,
    login: Login,
    private readonly onChange?: (login: Login) => void,
  ) {
    this.login = login;
  }

  get userId(): string | undefined {
    return this.login.user?.id;
  }

  /** The access token, refreshed first when it expires within 30 s (or a quarter of its lifetime,
   * when that is shorter: a short-lived token is not refreshed at every use). */
  async getToken(): Promise<string> {
    const exp = tokenExpiry(this.login.token);
    const margin = Math.min(30_000, (this.login.expiresIn * 1000) / 4 || 30_000);
    if (exp !== undefined && exp - Date.now() < margin) return this.refresh();
    return this.login.token;
  }

  refresh(): Promise<string> {
    if (!this.refreshing) {
      this.refreshing = this.rest
        .refresh(this.login.refreshToken || undefined)
        .then((next) => {
          // The refresh answer may omit the user: keep the one from the login.
          this.login = { ...next, user: next.user ?? this.login.user };
          this.onChange?.(this.login);
          return this.login.token;
        })
        .finally(() => {
          this.refreshing = null;
        });
    }
    return this.refreshing;
  }

  /** An authenticated /api call; on 401 the token is refreshed and the call made once more. */
  async request<T>(method: string, path: string, options: { body?: unknown; query?: Record<string, string | number | undefined> } = {}): Promise<T> {
    try {
      return (await this.rest.request<T>(method, path, { ...options, token: await this.getToken() })).data;
    } catch (e) {
      if (!(e instanceof GigwireError) || e.status !== 401) throw e;
      return (await this.rest.request<T>(method, path, { ...options, token: await this.refresh() })).data;
    }
  }

  /** GET /api/orders/{id}/messages with this session's token. */
  async messages(orderId: string, page: { beforeSeq?: number; limit?: number } = {}): Promise<MessagePage> {
    try {
      return await this.rest.messages(await this.getToken(), orderId, page);
    } catch (e) {
      if (!(e instanceof GigwireError) || e.status !== 401) throw e;
      return this.rest.messages(await this.refresh(), orderId, page);
    }
  }

  /** Log out: the login's tokens are revoked and its realtime sessions closed. */
  async logout(): Promise<void> {
    await this.rest.logout(this.login.refreshToken || undefined);
  }
}
