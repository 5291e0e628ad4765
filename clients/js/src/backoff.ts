/** Reconnect delays: exponential from `minMs` to `maxMs`, with jitter. */
export interface BackoffOptions {
  minMs?: number;
  maxMs?: number;
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first): "equal jitter", half the
 * exponential step plus a random half, so clients cut at once do not all return at once.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const min = options.minMs ?? 500;
  const max = options.maxMs ?? 30_000;
  const step = Math.min(max, min * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + random() * (step / 2));
}
