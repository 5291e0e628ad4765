// Runs before 3-chaos, which kills a hub.
// watchConversations: a chat the client has not subscribed to still shows in its conversation list
// as "conversation" events, and the watch is asked for again after every reconnect.
import assert from "node:assert/strict";
import { test } from "node:test";

import { login, proxy, recordingClient, spec, until, wsUrl } from "./helpers.mjs";

const [hubA, hubB] = spec.hubs;
const order = spec.orders.conversations;

test("a watched conversation list stays live across a cut connection", async (t) => {
  const client = await login(order.client);
  const doer = await login(order.doer, hubB.url);
  const link = await proxy(hubA.url);
  const a = recordingClient({ url: wsUrl(link.url), tokens: client.session });
  const b = recordingClient({ url: wsUrl(hubB.url), tokens: doer.session });
  t.after(async () => {
    a.client.close();
    b.client.close();
    await link.close();
  });
  await a.client.watchConversations(); // before connecting: asked for once live
  a.client.connect();
  b.client.connect();
  await until(() => a.client.state === "live" && b.client.state === "live", "both clients live");

  const first = await b.client.send(order.id, "are you free to talk?");
  await until(() => (a.rec.conversations ?? []).length === 1, "the client's list to hear of the message");
  const [update] = a.rec.conversations;
  assert.equal(update.orderId, order.id);
  assert.equal(update.seq, first.seq);
  assert.equal(update.preview, "are you free to talk?");
  assert.equal(a.rec.messages.length, 0); // not subscribed: no chat message events

  link.cut(); // the client reconnects by itself and asks for the watch again
  await until(() => a.rec.auths.length >= 2 && a.client.state === "live", "the client to come back");
  await b.client.send(order.id, "still there?");
  await until(() => a.rec.conversations.length === 2, "the list to stay live after the reconnect");
  assert.equal(a.rec.conversations[1].preview, "still there?");

  await a.client.watchConversations(false);
  await b.client.send(order.id, "never mind");
  const marker = await b.client.send(order.id, "last one");
  // The doer's own client got its ACKs; give the server time to have signalled, had it still watched.
  await a.client.subscribe(order.id, { sinceSeq: marker.seq - 1 });
  await until(() => a.rec.messages.some((m) => m.seq === marker.seq), "the subscription's replay");
  assert.equal(a.rec.conversations.length, 2);
});
