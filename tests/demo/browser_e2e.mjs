// End-to-end run of the /demo page in headless Chromium, driven by playwright-core.
// Two browser contexts log in as the two parties of one order and chat: a message, typing, a read
// mark, a reply. Input (JSON in argv[2]): {base, orderId, client: {phone}, doer: {phone}, artifacts, deps}.
// Prints one JSON line {ok, steps} and exits 0, or prints the failure and exits 1.
import { createRequire } from "node:module";
import path from "node:path";

const input = JSON.parse(process.argv[2]);
const require = createRequire(path.join(input.deps, "package.json"));
const { chromium } = require("playwright-core");

const STEP_MS = 15000;
const steps = [];

function step(name) {
  steps.push(name);
}

async function otpFor(phone) {
  // The test server records each code it would have texted; only that test app has this route.
  for (let i = 0; i < 50; i++) {
    const resp = await fetch(`${input.base}/__test/otp?phone=${encodeURIComponent(phone)}`);
    if (resp.ok) return (await resp.text()).trim();
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no OTP was sent to ${phone}`);
}

async function login(page, phone) {
  await page.goto(`${input.base}/demo`);
  await page.fill("#phone", phone);
  await page.click("#send-otp");
  await page.waitForSelector("#otp-form:not([hidden])", { timeout: STEP_MS });
  await page.fill("#otp", await otpFor(phone));
  await page.click("#verify-otp");
  await page.waitForSelector('#conn[data-state="live"]', { timeout: STEP_MS });
  const item = `#orders li[data-order-id="${input.orderId}"]`;
  await page.waitForSelector(item, { timeout: STEP_MS });
  await page.click(item);
  await page.waitForSelector("#chat:not([hidden])", { timeout: STEP_MS });
}

async function messageIn(page, selector, text) {
  await page.waitForFunction(
    ([sel, t]) => [...document.querySelectorAll(sel)].some((el) => el.textContent === t),
    [selector, text],
    { timeout: STEP_MS },
  );
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  // Playwright gives every launch a fresh temporary --user-data-dir of its own.
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
const pageErrors = [];
try {
  const client = await (await browser.newContext({ viewport: { width: 1000, height: 700 } })).newPage();
  const doer = await (await browser.newContext({ viewport: { width: 1000, height: 700 } })).newPage();
  for (const [who, page] of [["client", client], ["doer", doer]]) {
    page.on("pageerror", (e) => pageErrors.push(`${who}: ${e.message}`));
    // A module that fails to load (a bad import, a CSP refusal) is a console error, not a pageerror.
    // (A missing favicon is one too, of no interest: "Failed to load resource".)
    page.on("console", (m) => {
      if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) pageErrors.push(`${who} console: ${m.text()}`);
    });
  }

  await login(client, input.client.phone);
  step("client logged in and opened the order");
  await login(doer, input.doer.phone);
  step("doer logged in and opened the order");

  const hello = `Hello from the client ${Date.now()}`;
  await client.fill("#text", hello);
  await client.press("#text", "Enter");
  await messageIn(doer, "#messages li.msg:not(.mine) .bubble", hello);
  step("doer received the client's message");
  await messageIn(client, "#messages li.msg.mine:not(.pending) .bubble", hello);
  step("client's message was acknowledged");

  await doer.type("#text", "On it", { delay: 20 });
  await client.waitForSelector("#typing:not([hidden])", { timeout: STEP_MS });
  step("client saw the doer typing");

  await client.waitForFunction(
    () => [...document.querySelectorAll("#messages li.msg.mine .meta")].some((m) => m.textContent.includes("seen")),
    null,
    { timeout: STEP_MS },
  );
  step("client saw the read mark");

  const reply = `On it ${Date.now()}`;
  await doer.fill("#text", reply);
  await doer.press("#text", "Enter");
  await messageIn(client, "#messages li.msg:not(.mine) .bubble", reply);
  step("client received the doer's reply");
  await client.waitForSelector("#typing[hidden]", { state: "attached", timeout: STEP_MS });
  step("typing mark cleared");

  // An order update arrives live: the status pill and a line in the chat.
  await fetch(`${input.base}/__test/order-update?orderId=${input.orderId}`, { method: "POST" });
  await client.waitForFunction(() => document.querySelector("#chat-status").textContent === "submitted", null, {
    timeout: STEP_MS,
  });
  await messageIn(client, "#messages li.msg.system .bubble", "Order is now submitted (escrow funded)");
  step("client saw the order update live");

  // The doer's connection is cut: the page reconnects with backoff and catches up with sinceSeq.
  const dropped = await fetch(`${input.base}/__test/drop?phone=${encodeURIComponent(input.doer.phone)}`, {
    method: "POST",
  });
  if ((await dropped.text()) === "0") throw new Error("the doer had no session to drop");
  await doer.waitForSelector('#conn:not([data-state="live"])', { timeout: STEP_MS });
  step("doer's connection dropped");
  const missed = `Sent while you were away ${Date.now()}`;
  await client.fill("#text", missed);
  await client.press("#text", "Enter");
  await messageIn(client, "#messages li.msg.mine:not(.pending) .bubble", missed);
  await doer.waitForSelector('#conn[data-state="live"]', { timeout: STEP_MS });
  await messageIn(doer, "#messages li.msg:not(.mine) .bubble", missed);
  const copies = await doer.$$eval("#messages .bubble", (els, t) => els.filter((e) => e.textContent === t).length, missed);
  if (copies !== 1) throw new Error(`the doer shows the missed message ${copies} times`);
  step("doer reconnected and caught up, once");

  await client.screenshot({ path: path.join(input.artifacts, "demo-client.png") });
  await doer.screenshot({ path: path.join(input.artifacts, "demo-doer.png") });
  step("screenshots saved");
  if (pageErrors.length) throw new Error(`errors on the page: ${pageErrors.join("; ")}`);
  console.log(JSON.stringify({ ok: true, steps }));
} catch (e) {
  console.log(JSON.stringify({ ok: false, steps, error: String(e && e.stack ? e.stack : e), pageErrors }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
