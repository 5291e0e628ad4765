// gigwire demo: phone OTP login, orders, and an order's live chat, built on the TypeScript SDK
// (clients/js, served as /demo/assets/gigwire-client.js). The SDK does the protocol's hard parts:
// token refresh, reconnect with backoff, resume of the chat and the feed, resends until ACKed,
// typing throttling. Everything the page loads comes from this server.
import { GigwireClient, GigwireRest, randomId } from "./gigwire-client.js";

const TYPING_SHOWN_MS = 6000; // docs/protocol.md: a typing mark ends by itself after 6 s without renewal

const $ = (id) => document.getElementById(id);
const rest = new GigwireRest({ baseUrl: location.origin });
const state = {
  session: null, // the SDK's Session: tokens, refreshed when needed
  client: null, // the SDK's GigwireClient on /ws
  userId: null,
  phone: null,
  orders: new Map(), // id -> order JSON
  current: null, // open order id
  messages: new Map(), // id or "pending:<clientMsgId>" -> message
  theirRead: 0, // highest seq the other party has read
  typingTimer: null,
};

function money(amount, currency) {
  try {
    return new Intl.NumberFormat("en-IN", { style: "currency", currency: currency || "INR" }).format(amount / 100);
  } catch (e) {
    return `${(amount / 100).toFixed(2)} ${currency || ""}`;
  }
}

function clock(ms) {
  return ms ? new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : "";
}

function words(s) {
  return String(s || "").replace(/_/g, " ");
}

function roleIn(order) {
  if (!order) return "";
  return order.clientId === state.userId ? "client" : order.doerId === state.userId ? "doer" : "";
}

function otherRole(order) {
  return roleIn(order) === "client" ? "doer" : "client";
}

function listOf(data) {
  if (Array.isArray(data)) return data;
  for (const key of ["items", "messages", "orders", "results"]) {
    if (data && Array.isArray(data[key])) return data[key];
  }
  return [];
}

function api(method, path, body) {
  return state.session.request(method, path, body === undefined ? {} : { body });
}

// ---------- login

function showLoginError(msg) {
  $("login-error").textContent = msg || "";
}

$("phone-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const phone = $("phone").value.trim();
  showLoginError("");
  $("send-otp").disabled = true;
  try {
    await rest.sendOtp(phone);
    state.phone = phone;
    $("otp-form").hidden = false;
    $("otp").focus();
  } catch (e) {
    showLoginError(e.message);
  } finally {
    $("send-otp").disabled = false;
  }
});

for (const b of document.querySelectorAll("[data-phone]")) {
  b.addEventListener("click", () => {
    $("phone").value = b.dataset.phone;
    $("phone-form").requestSubmit();
  });
}

$("otp-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  showLoginError("");
  $("verify-otp").disabled = true;
  try {
    const login = await rest.verifyOtp(state.phone, $("otp").value.trim());
    state.session = rest.session(login);
    state.userId = login.user && login.user.id;
    const name = login.user && login.user.name;
    $("whoami").textContent = name ? `${name} · ${state.phone}` : state.phone;
    $("login").hidden = true;
    $("app").hidden = false;
    $("logout").hidden = false;
    connect();
    await loadOrders();
  } catch (e) {
    showLoginError(e.message);
  } finally {
    $("verify-otp").disabled = false;
  }
});

$("logout").addEventListener("click", async () => {
  if (state.client) state.client.close();
  await state.session.logout().catch(() => {});
  location.reload();
});

// ---------- orders

async function loadOrders() {
  try {
    const data = await api("GET", "/api/orders");
    state.orders.clear();
    for (const o of listOf(data)) state.orders.set(o.id, o);
    renderOrders();
    loadTitles();
  } catch (e) {
    $("orders").innerHTML = "";
    $("orders-empty").hidden = false;
    $("orders-empty").textContent = `Could not load orders: ${e.message}`;
  }
}

async function loadTitles() {
  // Order JSON names its gig by id: fetch each gig once for a title people recognise.
  const titles = new Map();
  for (const o of state.orders.values()) {
    if (o.gigTitle || !o.gigId) continue;
    if (!titles.has(o.gigId)) {
      titles.set(o.gigId, api("GET", `/api/gigs/${o.gigId}`).then((g) => g && g.title, () => null));
    }
    const title = await titles.get(o.gigId);
    if (title) o.gigTitle = title;
  }
  renderOrders();
  if (state.current) renderChatHead();
}

function renderOrders() {
  const ul = $("orders");
  ul.innerHTML = "";
  $("orders-empty").hidden = state.orders.size > 0;
  for (const o of state.orders.values()) {
    const li = document.createElement("li");
    li.dataset.orderId = o.id;
    if (o.id === state.current) li.className = "active";
    const title = document.createElement("span");
    title.className = "title";
    title.textContent = o.gigTitle || (o.gig && o.gig.title) || `Order ${o.id.slice(0, 8)}`;
    const amount = document.createElement("span");
    amount.className = "amount";
    amount.textContent = money(o.amount, o.currency);
    const sub = document.createElement("span");
    sub.className = "sub";
    sub.textContent = `you are the ${roleIn(o) || "?"} · ${words(o.status)} · escrow ${words(o.escrowState)}`;
    li.append(title, amount, sub);
    li.addEventListener("click", () => openOrder(o.id));
    ul.append(li);
  }
}

$("reload-orders").addEventListener("click", loadOrders);

// ---------- chat

async function openOrder(orderId) {
  if (state.current && state.current !== orderId) state.client.unsubscribe(state.current);
  state.current = orderId;
  state.messages.clear();
  state.theirRead = 0;
  hideTyping();
  renderOrders();
  renderChatHead();
  $("chat-empty").hidden = true;
  $("chat").hidden = false;
  renderMessages();
  let sinceSeq = 0;
  try {
    // The newest page of history over REST, then the live chat from its last seq on.
    const page = await state.session.messages(orderId);
    if (state.current !== orderId) return;
    for (const m of page.items) addMessage(m);
    sinceSeq = page.items.length ? page.items[page.items.length - 1].seq : 0;
  } catch (e) {
    system(`Could not load the history: ${e.message}`);
  }
  if (state.current !== orderId) return;
  state.client.subscribe(orderId, { sinceSeq }).catch((e) => system(`Could not join this chat: ${e.message}`));
  $("text").focus();
}

function renderChatHead() {
  const o = state.orders.get(state.current);
  if (!o) return;
  $("chat-title").textContent = o.gigTitle || (o.gig && o.gig.title) || `Order ${o.id.slice(0, 8)}`;
  $("chat-meta").textContent = `${money(o.amount, o.currency)} · escrow ${words(o.escrowState)} · you are the ${
    roleIn(o) || "?"
  }`;
  $("chat-status").textContent = words(o.status);
}

function addMessage(m) {
  if (!m || m.orderId !== state.current || state.messages.has(m.id)) return;
  if (m.clientMsgId) state.messages.delete(`pending:${m.clientMsgId}`);
  state.messages.set(m.id, m);
  renderMessages();
  markRead();
}

function system(text) {
  const id = `system:${randomId()}`;
  let last = 0;
  for (const m of state.messages.values()) if (typeof m.seq === "number" && m.seq > last) last = m.seq;
  state.messages.set(id, { id, system: true, text, seq: last + 0.5, createdAt: Date.now() });
  renderMessages();
}

function renderMessages() {
  const ol = $("messages");
  const atBottom = ol.scrollHeight - ol.scrollTop - ol.clientHeight < 40;
  const all = [...state.messages.values()].sort(
    (a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity) || (a.createdAt || 0) - (b.createdAt || 0),
  );
  const order = state.orders.get(state.current);
  ol.innerHTML = "";
  for (const m of all) {
    const li = document.createElement("li");
    const mine = !m.system && m.senderId === state.userId;
    li.className = `msg${mine ? " mine" : ""}${m.system ? " system" : ""}${m.pending ? " pending" : ""}`;
    if (m.id) li.dataset.id = m.id;
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    bubble.textContent = m.text || (m.attachments && m.attachments.length ? "(attachment)" : "");
    li.append(bubble);
    if (!m.system) {
      const meta = document.createElement("div");
      meta.className = "meta";
      const who = mine ? "you" : `the ${roleIn(order) ? otherRole(order) : "other party"}`;
      let status = "";
      if (m.pending) status = " · sending…";
      else if (mine && m.seq <= state.theirRead) status = " · seen";
      meta.textContent = `${who} · ${clock(m.createdAt)}${status}`;
      li.append(meta);
    }
    ol.append(li);
  }
  if (atBottom) ol.scrollTop = ol.scrollHeight;
}

$("send-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const text = $("text").value.trim();
  const orderId = state.current;
  if (!text || !orderId) return;
  // The SDK keeps the message until it is acknowledged, resending it with this clientMsgId after a
  // reconnect, so it is stored once; the bubble shows "sending…" until then.
  const clientMsgId = randomId();
  state.messages.set(`pending:${clientMsgId}`, {
    id: `pending:${clientMsgId}`,
    pending: true,
    senderId: state.userId,
    text,
    createdAt: Date.now(),
  });
  $("text").value = "";
  renderMessages();
  state.client.send(orderId, text, { clientMsgId }).then(
    (ack) => {
      // The ACK may arrive before or after our own copy; either one settles the pending bubble.
      if (orderId === state.current) {
        addMessage({ ...ack, orderId, senderId: state.userId, text, attachments: [] });
      }
    },
    (e) => {
      state.messages.delete(`pending:${clientMsgId}`);
      system(`Not sent (${e.code || "error"}): ${e.message}`);
    },
  );
});

function markRead() {
  if (!state.client || document.visibilityState !== "visible") return;
  let latest = null;
  for (const m of state.messages.values()) {
    if (!m.system && !m.pending && m.senderId !== state.userId && (!latest || m.seq > latest.seq)) latest = m;
  }
  if (latest) state.client.markRead(latest); // the SDK sends it once, and only when it moves up
}

document.addEventListener("visibilitychange", markRead);

// typing: the SDK renews TYPING_START at most every 2.5 s and sends TYPING_STOP after quiet
$("text").addEventListener("input", () => {
  if (state.current) state.client.typing(state.current);
});

function showTyping() {
  const o = state.orders.get(state.current);
  $("typing").textContent = `the ${o ? otherRole(o) : "other party"} is typing…`;
  $("typing").hidden = false;
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(hideTyping, TYPING_SHOWN_MS);
}

function hideTyping() {
  clearTimeout(state.typingTimer);
  $("typing").hidden = true;
}

// ---------- the realtime connection

function setConn(kind, text) {
  const el = $("conn");
  el.className = `pill ${kind}`;
  el.dataset.state = kind === "on" ? "live" : kind === "wait" ? "connecting" : "offline";
  el.textContent = text;
}

function connect() {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
  const client = new GigwireClient({ url, tokens: state.session, backoff: { minMs: 1000, maxMs: 30000 } });
  state.client = client;
  client.on("state", (s) => {
    if (s === "live") setConn("on", "live");
    else if (s === "connecting") setConn("wait", "connecting…");
    else if (s === "waiting") setConn("wait", "reconnecting…");
    else if (s === "unauthorized") {
      setConn("off", "logged out");
      $("app").hidden = true;
      $("login").hidden = false;
      showLoginError("Your session expired: log in again.");
    } else setConn("off", s === "closed" ? "closed" : "offline");
    if (s !== "live") hideTyping();
  });
  client.on("disconnected", (d) => {
    if (d.willReconnect) setConn("wait", `reconnecting in ${Math.ceil((d.delayMs || 0) / 1000)} s`);
  });
  client.on("authenticated", (a) => {
    state.userId = a.userId; // the server's word on who we are
    renderOrders();
  });
  client.on("message", (m) => {
    addMessage(m);
    if (m.orderId === state.current && m.senderId !== state.userId) hideTyping();
  });
  client.on("read", (r) => {
    if (r.orderId === state.current && r.userId !== state.userId && r.seq > state.theirRead) {
      state.theirRead = r.seq;
      renderMessages();
    }
  });
  client.on("typing", (t) => {
    if (t.orderId !== state.current || t.userId === state.userId) return;
    if (t.typing) showTyping();
    else hideTyping();
  });
  client.on("feed", ({ type, data }) => {
    if (type === "ORDER_UPDATE") {
      const o = state.orders.get(data.orderId);
      if (!o) {
        loadOrders(); // an order we have not listed yet
        return;
      }
      o.status = data.status;
      o.escrowState = data.escrowState;
      renderOrders();
      if (data.orderId === state.current) {
        renderChatHead();
        system(`Order is now ${words(data.status)} (escrow ${words(data.escrowState)})`);
      }
    } else if (type === "NOTIFICATION" && data.title) {
      system(`🔔 ${data.title}${data.body ? ` — ${data.body}` : ""}`);
    } else if (type === "NEW_APPLICATION") {
      system("A new application arrived on one of your gigs.");
    }
  });
  client.on("feedExpired", () => loadOrders());
  client.on("error", (e) => {
    if (e.code !== "unauthorized") system(`Server: ${e.message || e.code}`);
  });
  client.connect();
}
