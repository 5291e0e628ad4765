// Chaos: two SDK clients chat both ways while the client's connection is cut (its proxy refuses new
// connections for a while) and the hub the doer is on is killed with SIGKILL. An order event is
// triggered over REST during the cut. Afterwards each side has received every message of the other
// exactly once and in order, and both got the order event once. The pytest side checks the store
// (every message stored once) from the result file this test writes.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { test } from "node:test";

import { login, proxy, recordingClient, sleep, spec, until, wsUrl } from "./helpers.mjs";

const [hubA, hubB] = spec.hubs;
const order = spec.orders.chaos;
const PER_SIDE = 30;
const EVERY_MS = 110; // under the hub's 10 chat messages a second per connection

test("messages both ways and feed events survive a cut connection and a killed hub", async (t) => {
  const client = await login(order.client, hubA.url);
  const doer = await login(order.doer, hubA.url);
  const pa = await proxy(hubA.url); // the client reaches hub A through this
  const pb = await proxy(hubB.url); // the doer reaches hub B through this, hub A when B is gone
  const a = recordingClient({ url: wsUrl(pa.url), tokens: client.session });
  const b = recordingClient({ url: [wsUrl(pb.url), wsUrl(hubA.url)], tokens: doer.session });
  t.after(() => {
    a.client.close();
    b.client.close();
    pa.close();
    pb.close();
  });
  a.client.connect();
  b.client.connect();
  await Promise.all([a.client.subscribe(order.id, { sinceSeq: 0 }), b.client.subscribe(order.id, { sinceSeq: 0 })]);
  const feedBefore = { a: a.client.lastFeedSeq, b: b.client.lastFeedSeq };

  const sent = { a: [], b: [] };
  const acks = [];
  const sendAll = async (side, c) => {
    for (let i = 0; i < PER_SIDE; i++) {
      const text = `${side}-${String(i).padStart(2, "0")}`;
      sent[side].push(text);
      acks.push(c.send(order.id, text, { clientMsgId: `chaos-${side}-${i}-${order.id.slice(0, 8)}` }));
      await sleep(EVERY_MS);
    }
  };
  const flowing = Promise.all([sendAll("a", a.client), sendAll("b", b.client)]);

  // Mid-flow: cut the client's connection right after it sent a message (stored, its ACK lost: the
  // SDK must resend it, and it must still be stored once), refuse it for a while, and kill hub B
  // under the doer.
  await sleep(EVERY_MS * 8);
  await pa.downOnNextSend();
  process.kill(hubB.pid, "SIGKILL");
  pb.down();
  await until(() => a.client.state !== "live", "the client to notice the cut");
  // While the client is away: the doer delivers the work over REST (an ORDER_UPDATE to both feeds).
  const cutAt = Date.now();
  await doer.session.request("POST", `/api/orders/${order.id}/submit`, {
    body: { deliverables: [{ url: "https://files.example/final.zip", description: "final" }] },
  });
  // The doer (back on hub A) gets it live: it was published while the client was away, which then
  // gets it only by resuming its feed.
  await until(() => b.rec.feed.some((e) => e.type === "ORDER_UPDATE"), "the doer to get the order event", 20000);
  const upAt = Date.now();
  pa.up();

  await flowing;
  const settled = await Promise.allSettled(acks);
  const refused = settled.filter((s) => s.status === "rejected");
  assert.deepEqual(refused, [], "every send was acknowledged");
  const other = { a: b.rec, b: a.rec };
  for (const side of ["a", "b"]) {
    await until(
      () => other[side].messages.filter((m) => m.text.startsWith(`${side}-`)).length >= PER_SIDE,
      `the other side to receive all of ${side}'s messages`,
      20000,
    );
  }
  await until(() => a.rec.feed.length >= 1 && b.rec.feed.length >= 1, "the order event on both sides");
  await sleep(500); // anything arriving twice would arrive now

  for (const side of ["a", "b"]) {
    const mine = (rec) => rec.messages.filter((m) => m.text.startsWith(`${side}-`)).map((m) => m.text);
    assert.deepEqual(mine(other[side]), sent[side], `the other side got ${side}'s messages once, in order`);
    assert.deepEqual(mine(side === "a" ? a.rec : b.rec), sent[side], `${side} got its own messages once, in order`);
  }
  for (const rec of [a.rec, b.rec]) {
    const seqs = rec.messages.map((m) => m.seq);
    assert.deepEqual(
      seqs,
      seqs.map((_, i) => i + 1),
      "seqs 1..n without gap or repeat",
    );
  }
  // Both were really cut: each reconnected at least once.
  assert.ok(a.rec.disconnects.length >= 1 && b.rec.disconnects.length >= 1);

  // The order event reached both once, the client's after its reconnect (it was away); each side's
  // feed went on from where it was, without gap or repeat.
  for (const [rec, before] of [
    [a.rec, feedBefore.a],
    [b.rec, feedBefore.b],
  ]) {
    const updates = rec.feed.filter((e) => e.type === "ORDER_UPDATE" && e.data.orderId === order.id);
    assert.equal(updates.length, 1, JSON.stringify(rec.feed));
    assert.equal(updates[0].data.status, "submitted");
    assert.deepEqual(
      rec.feed.map((e) => e.data.feedSeq),
      rec.feed.map((_, i) => before + 1 + i),
    );
  }
  const clientUpdate = a.rec.feed.find((e) => e.type === "ORDER_UPDATE");
  assert.ok(clientUpdate.at >= upAt && upAt > cutAt, "the client got the event after coming back");

  writeFileSync(
    spec.result,
    JSON.stringify({
      orderId: order.id,
      sent,
      clientMsgIds: (await Promise.all(acks)).map((ack) => ack.clientMsgId),
      reconnects: { a: a.rec.disconnects.length, b: b.rec.disconnects.length },
    }),
  );
});
