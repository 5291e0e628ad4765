// The stock socket.io-client 4.x against gigwire's /socket.io/ on node B, talking to a raw
// WebSocket client (the `ws` package) on node A. Input (JSON in argv[2]):
// {a, b, orderId, client: {id, token}, doer: {id, token}, deps}. Prints one JSON line {ok, steps}.
import { createRequire } from "node:module";
import path from "node:path";

const input = JSON.parse(process.argv[2]);
const require = createRequire(path.join(input.deps, "package.json"));
const { io } = require("socket.io-client");
const WebSocket = require("ws");

const WITHIN_MS = 10000;
const steps = [];
const opened = []; // every socket and WebSocket, closed at the end whatever happens

function step(name) {
  steps.push(name);
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

function within(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), WITHIN_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function once(socket, event) {
  return within(new Promise((resolve) => socket.once(event, resolve)), event);
}

function sio(options) {
  const socket = io(input.b, { reconnection: false, ...options });
  opened.push(socket);
  return socket;
}

// A raw /ws client: frames as objects, waiting by predicate.
function rawClient(token) {
  const ws = new WebSocket(`${input.a.replace(/^http/, "ws")}/ws?token=${encodeURIComponent(token)}`);
  opened.push(ws);
  const frames = [];
  const waiters = [];
  ws.on("message", (data) => {
    const frame = JSON.parse(data.toString());
    const i = waiters.findIndex((w) => w.match(frame));
    if (i >= 0) waiters.splice(i, 1)[0].resolve(frame);
    else frames.push(frame);
  });
  const next = (match, what) => {
    const i = frames.findIndex(match);
    if (i >= 0) return Promise.resolve(frames.splice(i, 1)[0]);
    return within(new Promise((resolve) => waiters.push({ match, resolve })), what);
  };
  let ref = 0;
  const request = (type, data) => {
    const r = `js-${++ref}`;
    ws.send(JSON.stringify({ type, data, ref: r }));
    return next((f) => f.ref === r, `answer to ${type}`);
  };
  return { ws, next, request };
}

try {
  // 1. A bad handshake token is refused with the protocol's error object.
  const bad = sio({ auth: { token: "not-a-token" }, transports: ["websocket"] });
  const refused = await once(bad, "connect_error");
  check(refused.data && refused.data.code === "unauthorized", `connect_error data ${JSON.stringify(refused.data)}`);
  step("bad token refused with unauthorized");

  // 2. The doer with the handshake token, default transports (polling, then the upgrade).
  const doer = sio({ auth: { token: input.doer.token } });
  const hello = await once(doer, "AUTHENTICATED");
  check(hello.userId === input.doer.id, "AUTHENTICATED names the doer");
  const sub = await within(doer.emitWithAck("SUBSCRIBE_CHAT", { orderId: input.orderId }), "subscribe ack");
  check(sub.orderId === input.orderId && sub.lastSeq === 0, `subscribe ack ${JSON.stringify(sub)}`);
  step("doer authenticated in the handshake and subscribed");

  // 3. An error ack for a bad event; the connection stays.
  const err = await within(doer.emitWithAck("CHAT_MESSAGE", { orderId: "nope", text: "x" }), "error ack");
  check(err.error && err.error.code === "bad_request", `error ack ${JSON.stringify(err)}`);
  step("bad event answered with an error ack");

  // 4. The client authenticates with the AUTHENTICATE event instead.
  const client = sio({ transports: ["websocket"] });
  await once(client, "connect");
  const early = await within(client.emitWithAck("SUBSCRIBE_CHAT", { orderId: input.orderId }), "early ack");
  check(early.error && early.error.code === "unauthorized", "events before AUTHENTICATE are refused");
  const auth = await within(client.emitWithAck("AUTHENTICATE", { token: input.client.token }), "auth ack");
  check(auth.userId === input.client.id, "AUTHENTICATE ack names the client");
  await within(client.emitWithAck("SUBSCRIBE_CHAT", { orderId: input.orderId }), "client subscribe");
  step("client authenticated with the AUTHENTICATE event");

  // 5. The client's raw WebSocket session on the other node.
  const raw = rawClient(input.client.token);
  await raw.next((f) => f.type === "AUTHENTICATED", "raw AUTHENTICATED");
  const rawSub = await raw.request("SUBSCRIBE_CHAT", { orderId: input.orderId });
  check(rawSub.type === "ACK", "raw subscribe ACK");
  step("raw WebSocket client subscribed on node A");

  // 6. Raw WebSocket -> Socket.IO, across nodes.
  const fromRaw = once(doer, "CHAT_MESSAGE");
  const rawAck = await raw.request("CHAT_MESSAGE", { orderId: input.orderId, text: "from ws", clientMsgId: "j1" });
  check(rawAck.type === "ACK", `raw send ${JSON.stringify(rawAck)}`);
  const got = await fromRaw;
  check(got.id === rawAck.data.id && got.text === "from ws" && got.seq === 1, `doer got ${JSON.stringify(got)}`);
  step("message from raw WebSocket on A reached socket.io-client on B");

  // 7. Socket.IO -> raw WebSocket, and to the same user's other Socket.IO session.
  const toClientSio = within(
    new Promise((resolve) => client.on("CHAT_MESSAGE", (m) => m.seq === 2 && resolve(m))),
    "client's Socket.IO session receives",
  );
  const sent = await within(
    doer.emitWithAck("CHAT_MESSAGE", { orderId: input.orderId, text: "from sio", clientMsgId: "j2" }),
    "sio send ack",
  );
  check(sent.seq === 2 && sent.clientMsgId === "j2", `sio send ack ${JSON.stringify(sent)}`);
  const onRaw = await raw.next((f) => f.type === "CHAT_MESSAGE" && f.data.seq === 2, "raw receives");
  check(onRaw.data.id === sent.id, "raw got the same message");
  check((await toClientSio).id === sent.id, "client's Socket.IO session got it too");
  step("message from socket.io-client on B reached raw WebSocket on A");

  // 8. Typing, read marks, PING.
  const typing = raw.next((f) => f.type === "TYPING_START", "raw typing");
  await within(doer.emitWithAck("TYPING_START", { orderId: input.orderId }), "typing ack");
  check((await typing).data.userId === input.doer.id, "typing relayed");
  const read = once(doer, "MESSAGE_READ");
  await raw.request("MESSAGE_READ", { messageId: sent.id });
  check((await read).seq === 2, "read mark relayed");
  const pong = once(doer, "PONG");
  const pingAck = await within(doer.emitWithAck("PING"), "ping ack");
  await pong;
  check(JSON.stringify(pingAck) === "{}", "PING ack");
  step("typing, read mark and PING across transports");

  console.log(JSON.stringify({ ok: true, steps }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, steps, error: String(e && e.stack ? e.stack : e) }));
  process.exitCode = 1;
} finally {
  for (const s of opened) s.close();
  setTimeout(() => process.exit(), 200).unref(); // nothing left open may keep the run alive
}
