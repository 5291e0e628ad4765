// Pure functions of the SDK: the reconnect delays (exponential from minMs, capped at maxMs, each
// between half the step and the step, whatever the random draw) and reading a JWT's expiry.
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay, tokenExpiry } from "../dist/esm/index.js";

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

test("tokenExpiry reads exp from a JWT's payload (base64url), undefined when it cannot", () => {
  const payload = (claims) => Buffer.from(JSON.stringify(claims)).toString("base64url");
  assert.equal(tokenExpiry(`h.${payload({ sub: "u", exp: 1764748800, name: "ü??>" })}.s`), 1764748800000);
  assert.equal(tokenExpiry(`h.${payload({ sub: "u" })}.s`), undefined);
  assert.equal(tokenExpiry("not-a-token"), undefined);
  assert.equal(tokenExpiry("h.%%%.s"), undefined);
});
