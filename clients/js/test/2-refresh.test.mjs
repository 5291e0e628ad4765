// Token refresh: access tokens live 8 s in this cluster. The server says SESSION_EXPIRING before the
// token expires; the SDK refreshes it over REST and re-AUTHENTICATEs on the same connection, which
// therefore outlives the token it opened with.
import assert from "node:assert/strict";
import { test } from "node:test";

import { tokenExpiry } from "../dist/esm/index.js";
import { login, recordingClient, sleep, spec, until, wsUrl } from "./helpers.mjs";

const order = spec.orders.refresh;

test("the session is renewed before its token expires, on the same connection", async (t) => {
  const client = await login(order.client);
  const firstExpiry = tokenExpiry(client.login.token);
  assert.ok(firstExpiry > Date.now(), "the login's token has an expiry");
  const a = recordingClient({ url: wsUrl(spec.hubs[0].url), tokens: client.session });
  t.after(() => a.client.close());
  const expiring = [];
  a.client.on("sessionExpiring", (e) => expiring.push(e));
  a.client.connect();
  await a.client.subscribe(order.id, { sinceSeq: 0 });

  await until(() => a.rec.auths.length >= 2, "a second AUTHENTICATED (the renewal)", 15000);
  assert.equal(expiring.length >= 1, true);
  assert.equal(expiring[0].expiresAt, firstExpiry);
  assert.equal(a.rec.auths[1].sessionId, a.rec.auths[0].sessionId, "the same session, renewed");

  // Past the first token's expiry the connection is still the first one, and it works.
  await sleep(Math.max(0, firstExpiry - Date.now()) + 1000);
  assert.deepEqual(a.rec.disconnects, []);
  const ack = await a.client.send(order.id, "after the first token expired");
  assert.equal(ack.seq, 1);
  await until(() => a.rec.messages.length === 1, "the echo");
  assert.notEqual(tokenExpiry(await client.session.getToken()), firstExpiry);
});
