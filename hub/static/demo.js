// gigwire demo client: phone OTP login, orders, and an order's live chat over the raw /ws protocol
// (docs/protocol.md). Plain browser JavaScript, no dependencies; everything it loads comes from this server.
"use strict";

(() => {
  const TYPING_SHOWN_MS = 6000; // docs/protocol.md: a typing mark ends by itself after 6 s without renewal
  const TYPING_RENEW_MS = 3000;
  const TYPING_IDLE_MS = 2500;
  const PING_EVERY_MS = 25000;
  const PONG_WITHIN_MS = 10000;
  const BACKOFF_MIN_MS = 1000;
  const BACKOFF_MAX_MS = 30000;

  const $ = (id) => document.getElementById(id);
  const state = {
    token: null,
    userId: null,
    phone: null,
    orders: new Map(), // id -> order JSON
    current: null, // open order id
    messages: new Map(), // id or "pending:<clientMsgId>" -> message
    lastSeq: 0, // highest seq seen in the open order: the sinceSeq of the next subscription
    readSent: 0, // highest seq we sent MESSAGE_READ for
    theirRead: 0, // highest seq the other party has read
    ws: null,
    live: false,
    attempt: 0,
    reconnectTimer: null,
    pingTimer: null,
    pongTimer: null,
    refSeq: 0,
    pendingRefs: new Map(), // ref -> {resolve, reject}
    outbox: new Map(), // clientMsgId -> {orderId, text}: sent but not yet acknowledged
    typingTimer: null,
    typingSentAt: 0,
    typingIdle: null,
  };

  // ---------- helpers

  function newId() {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b); // works on plain http too, unlike crypto.randomUUID
    return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  }

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

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    const resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
    let json = null;
    try {
      json = await resp.json();
    } catch (e) {
      /* not JSON: handled below */
    }
    if (!resp.ok || !json || json.success === false) {
      const err = (json && json.error) || {};
      const e = new Error(err.message || `${method} ${path} answered ${resp.status}`);
      e.status = resp.status;
      e.code = err.code;
      throw e;
    }
    return json.data !== undefined ? json.data : json;
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
      await api("POST", "/api/auth/send-otp", { phone });
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
      const data = await api("POST", "/api/auth/verify-otp", { phone: state.phone, otp: $("otp").value.trim() });
      const token = data.accessToken || data.token;
      if (!token) throw new Error("The server answered without an access token.");
      state.token = token;
      state.userId = (data.user && data.user.id) || null;
      const name = data.user && data.user.name;
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

  $("logout").addEventListener("click", () => {
    api("POST", "/api/auth/logout", {}).catch(() => {});
    location.reload();
  });

  async function refreshToken() {
    try {
      const data = await api("POST", "/api/auth/refresh", {});
      const token = data.accessToken || data.token;
      if (token) {
        state.token = token;
        return true;
      }
    } catch (e) {
      /* the refresh cookie is gone or expired: log in again */
    }
    return false;
  }

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
    if (state.current && state.current !== orderId && state.live) {
      send("UNSUBSCRIBE_CHAT", { orderId: state.current }).catch(() => {});
    }
    state.current = orderId;
    state.messages.clear();
    state.lastSeq = 0;
    state.readSent = 0;
    state.theirRead = 0;
    hideTyping();
    renderOrders();
    renderChatHead();
    $("chat-empty").hidden = true;
    $("chat").hidden = false;
    renderMessages();
    try {
      const data = await api("GET", `/api/orders/${orderId}/messages`);
      if (state.current !== orderId) return;
      for (const m of listOf(data)) addMessage(m);
    } catch (e) {
      // No history route: SUBSCRIBE_CHAT with sinceSeq 0 replays the whole chat instead.
    }
    if (state.current === orderId) subscribe();
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

  function subscribe() {
    if (!state.live || !state.current) return;
    const orderId = state.current;
    send("SUBSCRIBE_CHAT", { orderId, sinceSeq: state.lastSeq })
      .then(() => flushOutbox())
      .catch((e) => system(`Could not join this chat: ${e.message}`));
  }

  function addMessage(m) {
    if (!m || m.orderId !== state.current) return;
    if (state.messages.has(m.id)) return; // at-least-once delivery: drop repeats by id
    if (m.clientMsgId) {
      state.messages.delete(`pending:${m.clientMsgId}`);
      state.outbox.delete(m.clientMsgId);
    }
    state.messages.set(m.id, m);
    if (m.seq > state.lastSeq) state.lastSeq = m.seq;
    renderMessages();
    markRead();
  }

  function system(text) {
    const id = `system:${newId()}`;
    state.messages.set(id, { id, system: true, text, seq: state.lastSeq + 0.5, createdAt: Date.now() });
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
    if (!text || !state.current) return;
    const clientMsgId = newId();
    state.outbox.set(clientMsgId, { orderId: state.current, text });
    state.messages.set(`pending:${clientMsgId}`, {
      id: `pending:${clientMsgId}`,
      pending: true,
      senderId: state.userId,
      text,
      createdAt: Date.now(),
    });
    $("text").value = "";
    renderMessages();
    stopTyping();
    if (state.live) sendChat(clientMsgId);
  });

  function sendChat(clientMsgId) {
    const item = state.outbox.get(clientMsgId);
    if (!item) return;
    send("CHAT_MESSAGE", { orderId: item.orderId, text: item.text, clientMsgId })
      .then((ack) => {
        // The ACK may arrive before or after our own copy; either one settles the pending bubble.
        if (item.orderId === state.current && !state.messages.has(ack.id)) {
          addMessage({ ...ack, orderId: item.orderId, senderId: state.userId, text: item.text, attachments: [] });
        }
        state.outbox.delete(clientMsgId);
      })
      .catch((e) => {
        if (e.code === "disconnected") return; // resent with the same clientMsgId after reconnecting
        state.outbox.delete(clientMsgId);
        state.messages.delete(`pending:${clientMsgId}`);
        system(`Not sent (${e.code || "error"}): ${e.message}`);
      });
  }

  function flushOutbox() {
    // Resending keeps the clientMsgId, so the server stores each message once.
    for (const [clientMsgId, item] of state.outbox) {
      if (item.orderId === state.current) sendChat(clientMsgId);
    }
  }

  function markRead() {
    if (!state.live || document.visibilityState !== "visible") return;
    let latest = null;
    for (const m of state.messages.values()) {
      if (!m.system && !m.pending && m.senderId !== state.userId && m.seq > state.readSent) {
        if (!latest || m.seq > latest.seq) latest = m;
      }
    }
    if (!latest) return;
    state.readSent = latest.seq;
    send("MESSAGE_READ", { messageId: latest.id }).catch(() => {});
  }

  document.addEventListener("visibilitychange", markRead);

  // typing: renew while keys come, stop when idle or sent
  $("text").addEventListener("input", () => {
    if (!state.live || !state.current) return;
    const now = Date.now();
    if (now - state.typingSentAt > TYPING_RENEW_MS) {
      state.typingSentAt = now;
      send("TYPING_START", { orderId: state.current }).catch(() => {});
    }
    clearTimeout(state.typingIdle);
    state.typingIdle = setTimeout(stopTyping, TYPING_IDLE_MS);
  });

  function stopTyping() {
    clearTimeout(state.typingIdle);
    if (state.typingSentAt && state.live && state.current) {
      send("TYPING_STOP", { orderId: state.current }).catch(() => {});
    }
    state.typingSentAt = 0;
  }

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

  function send(type, data) {
    return new Promise((resolve, reject) => {
      if (!state.ws || state.ws.readyState !== WebSocket.OPEN) {
        const e = new Error("not connected");
        e.code = "disconnected";
        reject(e);
        return;
      }
      const ref = `d-${++state.refSeq}`;
      state.pendingRefs.set(ref, { resolve, reject });
      state.ws.send(JSON.stringify({ type, data, ref }));
    });
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    setConn("wait", state.attempt ? "reconnecting…" : "connecting…");
    const ws = new WebSocket(url);
    state.ws = ws;
    ws.onopen = () => {
      // The token goes in the first frame, not the URL, so it stays out of access logs.
      ws.send(JSON.stringify({ type: "AUTHENTICATE", data: { token: state.token } }));
    };
    ws.onmessage = (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      onFrame(frame);
    };
    ws.onclose = (ev) => onClose(ws, ev);
  }

  function onFrame({ type, data = {}, ref }) {
    if (ref && state.pendingRefs.has(ref) && (type === "ACK" || type === "ERROR")) {
      const p = state.pendingRefs.get(ref);
      state.pendingRefs.delete(ref);
      if (type === "ACK") p.resolve(data);
      else {
        const e = new Error(data.message || data.code);
        e.code = data.code;
        p.reject(e);
      }
      return;
    }
    switch (type) {
      case "AUTHENTICATED":
        state.live = true;
        state.attempt = 0;
        state.userId = data.userId; // the server's word on who we are
        setConn("on", "live");
        startPings();
        subscribe();
        renderOrders();
        break;
      case "CHAT_MESSAGE":
        addMessage(data);
        if (data.orderId === state.current && data.senderId !== state.userId) hideTyping();
        break;
      case "MESSAGE_READ":
        if (data.orderId === state.current && data.userId !== state.userId && data.seq > state.theirRead) {
          state.theirRead = data.seq;
          renderMessages();
        }
        break;
      case "TYPING_START":
        if (data.orderId === state.current && data.userId !== state.userId) showTyping();
        break;
      case "TYPING_STOP":
        if (data.orderId === state.current && data.userId !== state.userId) hideTyping();
        break;
      case "ORDER_UPDATE": {
        const o = state.orders.get(data.orderId);
        if (o) {
          o.status = data.status;
          o.escrowState = data.escrowState;
          renderOrders();
          if (data.orderId === state.current) {
            renderChatHead();
            system(`Order is now ${words(data.status)} (escrow ${words(data.escrowState)})`);
          }
        } else {
          loadOrders(); // an order we have not listed yet
        }
        break;
      }
      case "NOTIFICATION":
        if (data.title) system(`🔔 ${data.title}${data.body ? ` — ${data.body}` : ""}`);
        break;
      case "PONG":
        clearTimeout(state.pongTimer);
        break;
      case "ERROR":
        if (data.code !== "unauthorized") system(`Server: ${data.message || data.code}`);
        break;
      default:
        break;
    }
  }

  function startPings() {
    clearInterval(state.pingTimer);
    state.pingTimer = setInterval(() => {
      if (!state.ws || state.ws.readyState !== WebSocket.OPEN) return;
      state.ws.send(JSON.stringify({ type: "PING" }));
      clearTimeout(state.pongTimer);
      // No PONG in time: the connection is dead without knowing it; drop it and reconnect.
      state.pongTimer = setTimeout(() => state.ws && state.ws.close(), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  async function onClose(ws, ev) {
    if (ws !== state.ws) return;
    state.live = false;
    clearInterval(state.pingTimer);
    clearTimeout(state.pongTimer);
    for (const p of state.pendingRefs.values()) {
      const e = new Error("connection lost");
      e.code = "disconnected";
      p.reject(e);
    }
    state.pendingRefs.clear();
    hideTyping();
    if (ev.code === 1009) {
      setConn("off", "closed: frame too large");
      return;
    }
    if (ev.code === 4401 && !(await refreshToken())) {
      setConn("off", "logged out");
      $("app").hidden = true;
      $("login").hidden = false;
      showLoginError("Your session expired: log in again.");
      return;
    }
    // Exponential backoff with jitter, so a restarted server is not hit by every tab at once.
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt);
    const delay = Math.round(base / 2 + Math.random() * (base / 2));
    state.attempt += 1;
    setConn("wait", `reconnecting in ${Math.ceil(delay / 1000)} s`);
    state.reconnectTimer = setTimeout(connect, delay);
  }
})();
