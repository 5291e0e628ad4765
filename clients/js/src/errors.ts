import type { ErrorCode } from "./generated/protocol.js";

/**
 * What went wrong, as a code a program can switch on:
 * - the protocol's ERROR codes (`bad_request`, `forbidden`, `not_found`, `rate_limited`, ...);
 * - `disconnected`: the connection ended before the answer (requests other than chat sends);
 * - `timeout`: no answer in time;
 * - `queue_full`: the offline queue is at its bound (`queueLimit`);
 * - `closed`: the client was closed, or stopped for good (a fatal close code);
 * - `http_<status>` and `network`: REST failures without the error shape.
 */
export type GigwireErrorCode = ErrorCode | "disconnected" | "timeout" | "queue_full" | "closed" | "network" | `http_${number}`;

/** An error of the gigwire SDK: a protocol ERROR, a REST error, or one of the SDK's own. */
export class GigwireError extends Error {
  readonly code: GigwireErrorCode;
  /** HTTP status of a REST error. */
  readonly status?: number;
  /** `details` of a REST error, `retryAfterMs` of a rate_limited ERROR. */
  readonly details?: Record<string, unknown>;
  readonly retryAfterMs?: number;

  constructor(
    code: GigwireErrorCode,
    message: string,
    extra: { status?: number; details?: Record<string, unknown>; retryAfterMs?: number } = {},
  ) {
    super(message);
    this.name = "GigwireError";
    this.code = code;
    if (extra.status !== undefined) this.status = extra.status;
    if (extra.details !== undefined) this.details = extra.details;
    if (extra.retryAfterMs !== undefined) this.retryAfterMs = extra.retryAfterMs;
  }
}

/** The server refused the login (not: could not be asked). */
export function isRefusal(e: unknown): e is GigwireError {
  return e instanceof GigwireError && (e.code === "unauthorized" || e.status === 401);
}

/** The GigwireError of an ERROR frame's data. */
export function errorOf(data: { code: GigwireError["code"]; message: string; retryAfterMs?: number | null }): GigwireError {
  const extra: { retryAfterMs?: number } = {};
  if (typeof data.retryAfterMs === "number") extra.retryAfterMs = data.retryAfterMs;
  return new GigwireError(data.code, data.message, extra);
}
