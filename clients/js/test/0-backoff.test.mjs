// The reconnect delays: exponential from minMs, capped at maxMs, each between half the step and the
// step (jitter), whatever the random draw.
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay } from "../dist/esm/index.js";

test("backoff doubles from minMs to maxMs with equal jitter", () => {
  const opts = { minMs: 100, maxMs: 1000 };
  const steps = [100, 200, 400, 800, 1000, 1000];
  steps.forEach((step, attempt) => {
    assert.equal(backoffDelay(attempt, opts, () => 0), step / 2);
    assert.equal(backoffDelay(attempt, opts, () => 0.999999), step);
  });
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3, opts);
    assert.ok(d >= 400 && d <= 800, String(d));
  }
  assert.equal(backoffDelay(1000, opts, () => 1), 1000); // no overflow for a long outage
  assert.equal(backoffDelay(0, {}, () => 1), 500); // defaults: 500 ms ...
  assert.equal(backoffDelay(20, {}, () => 1), 30000); // ... to 30 s
});
