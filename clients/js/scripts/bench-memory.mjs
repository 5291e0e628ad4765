#!/usr/bin/env node
// Memory per client of the SDK under Node (run with --expose-gc), run by bench/sdk_js.py: N GigwireClients connected to one
// hub, each authenticated and subscribed to one order; the heap growth (after a full GC) divided by N.
// For comparison the same N bare `ws` connections doing the same (AUTHENTICATE, SUBSCRIBE_CHAT)
// without the SDK. Also the browser bundle's size, minified and gzipped. Input: JSON in argv[2]
// {url, tokens: [..], orderId, n, deps}; prints one JSON line.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

import { GigwireClient } from "../dist/esm/index.js";

const input = JSON.parse(process.argv[2]);
const WebSocket = createRequire(path.join(input.deps, "package.json"))("ws");
const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
if (typeof gc !== "function") throw new Error("run with node --expose-gc");

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function heap() {
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(50);
  }
  return process.memoryUsage().heapUsed;
}

async function bare(i) {
  const ws = new WebSocket(input.url);
  await new Promise((resolve, reject) => {
    ws.onopen = () => ws.send(JSON.stringify({ type: "AUTHENTICATE", data: { token: input.tokens[i % input.tokens.length] } }));
    ws.onmessage = (ev) => {
      const frame = JSON.parse(ev.data);
      if (frame.type === "AUTHENTICATED") ws.send(JSON.stringify({ type: "SUBSCRIBE_CHAT", data: { orderId: input.orderId }, ref: "s" }));
      if (frame.type === "ACK" && frame.ref === "s") resolve();
    };
    ws.onerror = reject;
  });
  return ws;
}

async function sdk(i) {
  const token = input.tokens[i % input.tokens.length];
  const client = new GigwireClient({ url: input.url, WebSocket, tokens: { getToken: () => token } });
  client.connect();
  await client.subscribe(input.orderId, { sinceSeq: 0 });
  return client;
}

async function measure(make, close) {
  const before = await heap();
  const made = [];
  for (let i = 0; i < input.n; i += 50) {
    made.push(...(await Promise.all(Array.from({ length: Math.min(50, input.n - i) }, (_, k) => make(i + k)))));
  }
  const after = await heap();
  for (const x of made) close(x);
  await sleep(300);
  return Math.round((after - before) / input.n);
}

const bareBytes = await measure(bare, (ws) => ws.close());
const sdkBytes = await measure(sdk, (c) => c.close());
const min = readFileSync(path.join(ROOT, "dist", "gigwire-client.min.js"));
const full = readFileSync(path.join(ROOT, "dist", "gigwire-client.js"));
console.log(
  JSON.stringify({
    clients: input.n,
    heapPerBareWs: bareBytes,
    heapPerSdkClient: sdkBytes,
    bundle: { bytes: full.length, minified: min.length, minifiedGzip: gzipSync(min, { level: 9 }).length },
    node: process.version,
  }),
);
process.exit(0);
