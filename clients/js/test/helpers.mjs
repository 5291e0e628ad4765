// Helpers of the SDK's tests against a real gigwire, run by tests/sdk_js/test_js_sdk.py: the spec it
// passes in GIGWIRE_SDK_SPEC (hubs with their URLs, pids and logs; seeded orders with their parties'
// phones; where `ws` is installed), logging in through the SDK's REST helper with the code read
// from the hubs' logs (dev mode logs it), and a TCP proxy whose connections a test can cut.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";

import { GigwireClient, GigwireRest } from "../dist/esm/index.js";

export const spec = JSON.parse(process.env.GIGWIRE_SDK_SPEC ?? "null");
if (!spec) throw new Error("GIGWIRE_SDK_SPEC is not set: run these tests through ./test tests/sdk_js");
export const WebSocket = createRequire(path.join(spec.deps, "package.json"))("ws");

export const wsUrl = (httpUrl) => `${httpUrl.replace(/^http/, "ws")}/ws`;
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Wait until `check()` is truthy; fail naming `what` after `ms`. */
export async function until(check, what, ms = 15000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(20);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function loggedCode(phone) {
  const pattern = new RegExp(`OTP code (\\d{6}) for ${phone.replace("+", "\\+")}`, "g");
  let code = null;
  for (const hub of spec.hubs) {
    for (const m of readFileSync(hub.log, "utf8").matchAll(pattern)) code = m[1];
  }
  return code;
}

/** Log in through the SDK's REST helper at `base`; answers {rest, session, login}. */
export async function login(phone, base = spec.hubs[0].url) {
  const rest = new GigwireRest({ baseUrl: base });
  await rest.sendOtp(phone);
  let code = null;
  await until(() => (code = loggedCode(phone)), `the login code of ${phone} in the hub logs`);
  const login = await rest.verifyOtp(phone, code);
  return { rest, session: rest.session(login), login };
}

/** A client recording what it emits: messages, feed events, states, errors, disconnects. */
export function recordingClient(options) {
  const client = new GigwireClient({ WebSocket, backoff: { minMs: 100, maxMs: 1000 }, ...options });
  const rec = { messages: [], feed: [], states: [], errors: [], disconnects: [], typing: [], reads: [], auths: [] };
  client.on("message", (m) => rec.messages.push(m));
  client.on("feed", (e) => rec.feed.push({ ...e, at: Date.now() }));
  client.on("state", (s) => rec.states.push(s));
  client.on("error", (e) => rec.errors.push(e));
  client.on("disconnected", (d) => rec.disconnects.push(d));
  client.on("typing", (t) => rec.typing.push(t));
  client.on("read", (r) => rec.reads.push(r));
  client.on("authenticated", (a) => rec.auths.push(a));
  client.on("conversation", (c) => (rec.conversations ??= []).push(c));
  return { client, rec };
}

/** A TCP proxy on a loopback port to `target` (http://host:port): cut() destroys its connections
 * (the client sees the socket die, no close frame), down() also refuses new ones until up(), and
 * downOnNextSend() does that right after passing on the next chunk the client sends: the server
 * gets the frame (a chat message, stored) but its answer (the ACK) never reaches the client. */
export async function proxy(target) {
  const { hostname, port } = new URL(target);
  const pairs = new Set();
  let refusing = false;
  let armed = null; // resolve() of downOnNextSend's promise
  const drop = (pair) => {
    pairs.delete(pair);
    pair.inbound.destroy();
    pair.outbound.destroy();
  };
  const server = net.createServer((inbound) => {
    if (refusing) {
      inbound.destroy();
      return;
    }
    const outbound = net.connect(Number(port), hostname);
    const pair = { inbound, outbound };
    pairs.add(pair);
    inbound.on("data", (d) => {
      if (armed) {
        const resolve = armed;
        armed = null;
        refusing = true;
        pairs.delete(pair);
        outbound.end(d); // the chunk reaches the server, then its end: nothing comes back
        inbound.destroy();
        for (const other of [...pairs]) drop(other);
        resolve();
        return;
      }
      outbound.write(d);
    });
    outbound.on("data", (d) => {
      if (!inbound.destroyed) inbound.write(d);
    });
    for (const s of [inbound, outbound]) {
      s.on("error", () => {});
      s.on("close", () => pairs.has(pair) && drop(pair));
    }
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${server.address().port}`;
  return {
    url,
    cut() {
      for (const pair of [...pairs]) drop(pair);
    },
    down() {
      refusing = true;
      this.cut();
    },
    downOnNextSend() {
      return new Promise((resolve) => {
        armed = resolve;
      });
    },
    up() {
      refusing = false;
    },
    close() {
      this.down();
      server.close();
    },
  };
}
