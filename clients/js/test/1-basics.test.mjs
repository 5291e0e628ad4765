// The SDK against two real hubs: login over REST, chat both ways across hubs, typing throttled, read
// marks, history, typed errors, the bounded offline queue, and logout ending the session for good.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { test } from "node:test";

import { GigwireError } from "../dist/esm/index.js";
import { login, recordingClient, sleep, spec, until, wsUrl } from "./helpers.mjs";

const [hubA, hubB] = spec.hubs;
const order = spec.orders.basics;

test("the CommonJS build loads and exports the same API", () => {
  const cjs = createRequire(import.meta.url)("../dist/cjs/index.js");
  for (const name of ["GigwireClient", "GigwireRest", "Session", "GigwireError", "backoffDelay", "ERROR_CODES", "CLOSE_CODES"]) {
    assert.ok(cjs[name], name);
  }
  assert.equal(cjs.CLOSE_CODES[4401] !== undefined, true);
});

test("two parties on two hubs: chat, typing, read marks, history, errors, offline queue, logout", async (t) => {
  const client = await login(order.client);
  const doer = await login(order.doer, hubB.url);
  const a = recordingClient({ url: wsUrl(hubA.url), tokens: client.session, typingIdleMs: 600 });
  const b = recordingClient({ url: wsUrl(hubB.url), tokens: doer.session, queueLimit: 2 });
  t.after(() => {
    a.client.close();
    b.client.close();
  });

  // Offline: the doer's sends wait in the queue, which holds 2.
  const early = [b.client.send(order.id, "queued 1"), b.client.send(order.id, "queued 2")];
  await assert.rejects(b.client.send(order.id, "queued 3"), (e) => e instanceof GigwireError && e.code === "queue_full");
  assert.equal(b.client.pendingSends().length, 2);

  a.client.connect();
  const subA = await (async () => {
    const p = a.client.subscribe(order.id, { sinceSeq: 0 });
    return p;
  })();
  assert.equal(subA.orderId, order.id);
  assert.equal(a.client.state, "live");
  assert.equal(a.client.userId, client.login.user.id);

  b.client.connect();
  await b.client.subscribe(order.id, { sinceSeq: 0 });
  const acks = await Promise.all(early);
  assert.deepEqual(
    acks.map((x) => x.seq),
    [1, 2],
  );
  await until(() => a.rec.messages.length === 2, "the client to get the queued messages");
  assert.deepEqual(
    a.rec.messages.map((m) => m.text),
    ["queued 1", "queued 2"],
  );

  const hello = await a.client.send(order.id, "hello across hubs");
  assert.equal(hello.seq, 3);
  await until(() => b.rec.messages.some((m) => m.text === "hello across hubs"), "the doer to get the message");

  // Typing: ten calls in a second are one TYPING_START, then quiet ends it with one TYPING_STOP.
  for (let i = 0; i < 10; i++) {
    a.client.typing(order.id);
    await sleep(100);
  }
  await until(() => b.rec.typing.some((x) => !x.typing), "the doer to see typing stop");
  assert.deepEqual(
    b.rec.typing.map((x) => x.typing),
    [true, false],
  );
  assert.equal(b.rec.typing[0].userId, client.login.user.id);

  // Read mark: the doer reads the client's message; the client sees it.
  const seen = b.rec.messages.find((m) => m.text === "hello across hubs");
  b.client.markRead(seen);
  b.client.markRead(seen); // not sent twice
  await until(() => a.rec.reads.some((r) => r.seq === seen.seq), "the client to see the read mark");
  assert.equal(a.rec.reads.filter((r) => r.userId === doer.login.user.id).length, 1);

  // History over REST is what arrived live.
  const page = await client.session.messages(order.id);
  assert.deepEqual(
    page.items.map((m) => m.text),
    a.rec.messages.map((m) => m.text),
  );
  assert.equal(page.nextBeforeSeq, null);

  // Typed errors: a refused send rejects with the server's code; the connection stays.
  await assert.rejects(a.client.send(order.id, "x".repeat(4001)), (e) => e instanceof GigwireError && e.code === "too_large");
  await assert.rejects(a.client.subscribe(randomUUID()), (e) => e instanceof GigwireError && e.code === "not_found");
  // A frame over the server's 64 KiB would close the connection (1009): refused before sending.
  await assert.rejects(a.client.send(order.id, "é".repeat(40000)), (e) => e instanceof GigwireError && e.code === "too_large");
  assert.equal(a.client.state, "live");
  assert.equal((await a.client.send(order.id, "still here")).seq, 4);

  // Paused (an app in the background): sends wait, and connect() resumes the chat where it was.
  a.client.disconnect();
  assert.equal(a.client.state, "idle");
  const paused = a.client.send(order.id, "written while paused");
  await b.client.send(order.id, "sent while the client was away");
  await sleep(200);
  assert.equal(a.client.pendingSends().length, 1);
  a.client.connect();
  assert.equal((await paused).seq, 6);
  await until(() => a.rec.messages.length === 6, "the client to catch up after resuming");

  // Each side got every message once, in seq order.
  await until(() => b.rec.messages.length === 6, "the doer to get all six");
  for (const rec of [a.rec, b.rec]) {
    assert.deepEqual(
      rec.messages.map((m) => m.seq),
      [1, 2, 3, 4, 5, 6],
    );
  }

  // A refused token (4401) is refreshed and the connection made again with the fresh one.
  const c = recordingClient({
    url: wsUrl(hubB.url),
    tokens: { getToken: () => "not-a-token", refresh: () => client.session.refresh() },
  });
  t.after(() => c.client.close());
  c.client.connect();
  await until(() => c.client.state === "live", "the client with a refused token to be live after a refresh");
  assert.equal(c.rec.disconnects[0].code, 4401);
  assert.equal(c.rec.disconnects[0].willReconnect, true);
  assert.ok(c.rec.errors.some((e) => e.code === "unauthorized" && e.message.includes("malformed token")));

  // Logout ends the doer's sessions (4401); the refresh is refused, so the client stops retrying.
  await doer.session.logout();
  await until(() => b.client.state === "unauthorized", "the doer's client to be unauthorized");
  const states = b.rec.states.length;
  await sleep(1500);
  assert.equal(b.rec.states.length, states, `no reconnect after unauthorized: ${b.rec.states.slice(states)}`);
  assert.ok(b.rec.errors.some((e) => e.code === "unauthorized"));
});
