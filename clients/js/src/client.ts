import type { Attachment, Authenticate, Authenticated, ChatAck, ChatMessage, ClientEvents, ServerFrame, SubscribeAck } from "./generated/protocol.js";
import { Connection, type ConnectionOptions } from "./connection.js";
import { GigwireError } from "./errors.js";
import { randomId } from "./ids.js";
import { FEED_TYPES, type FeedEvent } from "./types.js";

export interface ClientOptions extends ConnectionOptions {
  /** Resume the user's feed after this feedSeq on the first connection (later ones use the last seen). */
  sinceFeedSeq?: number;
  /** Chat messages waiting to be acknowledged at most (default 200); more are refused with queue_full. */
  queueLimit?: number;
  /** TYPING_START is renewed at most this often while typing() is called (default 2.5 s; the server ends it after 6 s). */
  typingRenewMs?: number;
  /** typing() not called for this long sends TYPING_STOP (default 4 s). */
  typingIdleMs?: number;
}

interface Chat {
  lastSeq: number | undefined; // the last seq delivered to the app (undefined: none known yet)
  resyncing: boolean; // a SUBSCRIBE_CHAT is on its way: gaps are filled by its replay
  waiters: Array<{ resolve: (ack: SubscribeAck) => void; reject: (e: GigwireError) => void }>;
}

interface ReadMark {
  sent: number; // the highest seq sent (or acknowledged) as read
  wanted: { messageId: string; seq: number } | undefined; // to send when live
}

interface OutItem {
  data: ClientEvents["CHAT_MESSAGE"] & { clientMsgId: string };
  resolve: (ack: ChatAck) => void;
  reject: (e: GigwireError) => void;
}

/**
 * A realtime client of gigwire's /ws protocol (docs/protocol.md) with the hard parts done:
 * authentication with token refresh, reconnect with jittered backoff, resume of the user feed and
 * of every subscribed chat from the last seqs seen, exactly-once sends through clientMsgId resends,
 * an offline queue with a bound, typing throttling and read marks.
 */
export class GigwireClient extends Connection {
  private pumpTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly chats = new Map<string, Chat>();
  private readonly reads = new Map<string, ReadMark>();
  private readonly outbox: OutItem[] = [];
  private sending: OutItem | null = null;
  private readonly typingState = new Map<string, { sentAt: number; idle: ReturnType<typeof setTimeout> }>();
  private feedSeq: number | undefined;
  private watching = false;
  private readonly opts: { queueLimit: number; typingRenewMs: number; typingIdleMs: number };

  constructor(options: ClientOptions) {
    super(options);
    this.feedSeq = options.sinceFeedSeq;
    this.opts = {
      queueLimit: options.queueLimit ?? 200,
      typingRenewMs: options.typingRenewMs ?? 2_500,
      typingIdleMs: options.typingIdleMs ?? 4_000,
    };
  }

  /** The last feedSeq handled: persist it and pass it as sinceFeedSeq when the app starts again. */
  get lastFeedSeq(): number | undefined {
    return this.feedSeq;
  }

  /** The last seq delivered in each subscribed order. */
  lastSeqs(): Record<string, number | undefined> {
    return Object.fromEntries([...this.chats].map(([id, c]) => [id, c.lastSeq]));
  }

  /** Chat messages sent but not yet acknowledged, oldest first (shown as "sending…"). */
  pendingSends(): Array<ClientEvents["CHAT_MESSAGE"] & { clientMsgId: string }> {
    return this.outbox.map((item) => ({ ...item.data }));
  }

  /** Close for good: pending requests and unsent messages are rejected with `closed`. */
  override close(): void {
    clearTimeout(this.pumpTimer);
    this.pumpTimer = undefined;
    super.close();
    for (const item of this.outbox.splice(0)) item.reject(new GigwireError("closed", "The client was closed."));
  }

  /**
   * Join an order's chat; its messages come as "message" events, each once and in seq order. With
   * `sinceSeq` (the last seq the app has, e.g. from history), every later one is replayed first.
   * After a reconnect the client subscribes again from the last seq it delivered. Resolves with
   * the ACK of the first subscription.
   */
  subscribe(orderId: string, options: { sinceSeq?: number } = {}): Promise<SubscribeAck> {
    let chat = this.chats.get(orderId);
    if (!chat) {
      chat = { lastSeq: options.sinceSeq, resyncing: false, waiters: [] };
      this.chats.set(orderId, chat);
    } else if (options.sinceSeq !== undefined && (chat.lastSeq === undefined || options.sinceSeq < chat.lastSeq)) {
      chat.lastSeq = options.sinceSeq;
    }
    const c = chat;
    return new Promise((resolve, reject) => {
      c.waiters.push({ resolve, reject });
      if (this.live) this.subscribeNow(orderId);
    });
  }

  /**
   * Keep a conversation list live: while on, a message in any of the user's chats this client has
   * not subscribed to comes as a "conversation" event (subscribed ones come as "message"). Kept
   * across reconnects: the client asks again each time it is live. Resolves once the server
   * answered (at once when not live: the next connection asks).
   */
  async watchConversations(on = true): Promise<void> {
    if (this.watching === on) return;
    this.watching = on;
    if (this.live) await this.request("WATCH_CONVERSATIONS", { enabled: on }).catch(() => {});
  }

  /** Leave an order's chat. */
  unsubscribe(orderId: string): void {
    if (!this.chats.delete(orderId)) return;
    this.clearTyping(orderId);
    if (this.live) this.request("UNSUBSCRIBE_CHAT", { orderId }).catch(() => {});
  }

  /**
   * Send a chat message. It is stored exactly once: kept (up to `queueLimit`) while offline and
   * sent again with the same clientMsgId after a reconnect until acknowledged, one at a time so
   * the order is kept. Resolves with the ACK; rejects on a refusal (bad_request, forbidden,
   * not_found, too_large), queue_full, or close().
   */
  send(orderId: string, text: string, options: { attachments?: Attachment[]; clientMsgId?: string } = {}): Promise<ChatAck> {
    if (this.state === "closed") return Promise.reject(new GigwireError("closed", "The client is closed."));
    if (this.outbox.length >= this.opts.queueLimit) {
      return Promise.reject(new GigwireError("queue_full", `${this.outbox.length} messages wait to be sent already.`));
    }
    const data: OutItem["data"] = { orderId, text, clientMsgId: options.clientMsgId ?? randomId() };
    if (options.attachments) data.attachments = options.attachments;
    this.stopTyping(orderId);
    return new Promise((resolve, reject) => {
      this.outbox.push({ data, resolve, reject });
      this.pump();
    });
  }

  /** Move the read mark of an order up to a message (never down; sent once, when live). */
  markRead(message: Pick<ChatMessage, "orderId" | "id" | "seq">): void {
    let mark = this.reads.get(message.orderId);
    if (!mark) this.reads.set(message.orderId, (mark = { sent: 0, wanted: undefined }));
    if (message.seq <= mark.sent || (mark.wanted && message.seq <= mark.wanted.seq)) return;
    mark.wanted = { messageId: message.id, seq: message.seq };
    this.flushRead(message.orderId);
  }

  /** The user is typing in an order: TYPING_START, renewed at most every typingRenewMs; TYPING_STOP after typingIdleMs of quiet. */
  typing(orderId: string): void {
    if (!this.live || !this.chats.has(orderId)) return;
    const now = Date.now();
    const t = this.typingState.get(orderId);
    if (t) clearTimeout(t.idle);
    const sentAt = t && now - t.sentAt < this.opts.typingRenewMs ? t.sentAt : now;
    if (sentAt === now) this.sendRaw("TYPING_START", { orderId });
    this.typingState.set(orderId, { sentAt, idle: setTimeout(() => this.stopTyping(orderId), this.opts.typingIdleMs) });
  }

  /** The user stopped typing (sending a message stops it too). */
  stopTyping(orderId: string): void {
    if (this.clearTyping(orderId) && this.live) this.sendRaw("TYPING_STOP", { orderId });
  }

  // ---- the hooks of Connection

  protected authExtras(): Omit<Authenticate, "token"> {
    return this.feedSeq === undefined ? {} : { sinceFeedSeq: this.feedSeq };
  }

  protected onLive(auth: Authenticated): void {
    if (this.feedSeq === undefined) this.feedSeq = auth.feedSeq; // live events follow from here
    for (const orderId of this.chats.keys()) this.subscribeNow(orderId);
    for (const orderId of this.reads.keys()) this.flushRead(orderId);
    if (this.watching) this.request("WATCH_CONVERSATIONS", { enabled: true }).catch(() => {});
    this.pump();
  }

  protected onLost(): void {
    for (const chat of this.chats.values()) chat.resyncing = false;
    for (const key of [...this.typingState.keys()]) this.clearTyping(key);
  }

  protected onFatal(code: number): void {
    for (const item of this.outbox.splice(0)) item.reject(new GigwireError("closed", `The server closed the connection (${code}).`));
  }

  protected onEvent(frame: ServerFrame): void {
    switch (frame.type) {
      case "CHAT_MESSAGE":
        this.onChat(frame.data);
        break;
      case "MESSAGE_READ":
        if (this.chats.has(frame.data.orderId)) this.emit("read", frame.data);
        break;
      case "TYPING_START":
      case "TYPING_STOP":
        this.emit("typing", { ...frame.data, typing: frame.type === "TYPING_START" });
        break;
      case "CONVERSATION_UPDATED":
        this.emit("conversation", frame.data);
        break;
      case "FEED_EXPIRED":
        this.feedSeq = frame.data.feedSeq;
        this.emit("feedExpired", frame.data);
        break;
      default:
        if ((FEED_TYPES as readonly string[]).includes(frame.type)) this.onFeed(frame as FeedEvent);
    }
  }

  private onFeed(event: FeedEvent): void {
    const seq = event.data.feedSeq;
    if (typeof seq === "number") {
      if (this.feedSeq !== undefined && seq <= this.feedSeq) return; // seen already (a replay's overlap)
      this.feedSeq = seq;
    }
    this.emit("feed", event);
  }

  private onChat(m: ChatMessage): void {
    const chat = this.chats.get(m.orderId);
    if (!chat) return;
    if (chat.lastSeq !== undefined) {
      if (m.seq <= chat.lastSeq) return; // a duplicate: at-least-once delivery
      if (m.seq > chat.lastSeq + 1) {
        // A gap: ask for a replay from the last seq delivered; it brings this one too, in order.
        if (!chat.resyncing) this.subscribeNow(m.orderId);
        return;
      }
    }
    chat.lastSeq = m.seq;
    this.emit("message", m);
  }

  private subscribeNow(orderId: string): void {
    const chat = this.chats.get(orderId);
    if (!chat) return;
    const data: ClientEvents["SUBSCRIBE_CHAT"] = { orderId };
    if (chat.lastSeq !== undefined) data.sinceSeq = chat.lastSeq;
    chat.resyncing = true;
    this.request("SUBSCRIBE_CHAT", data).then(
      (ack) => {
        if (this.chats.get(orderId) !== chat) return;
        chat.resyncing = false;
        // Everything up to ack.lastSeq was replayed before the ACK (or not asked for).
        if (chat.lastSeq === undefined || ack.lastSeq > chat.lastSeq) chat.lastSeq = ack.lastSeq;
        for (const w of chat.waiters.splice(0)) w.resolve(ack);
      },
      (e: GigwireError) => {
        if (this.chats.get(orderId) !== chat) return;
        chat.resyncing = false;
        if (e.code === "disconnected") return; // subscribed again once live
        if (e.code === "internal" || e.code === "rate_limited" || e.code === "timeout") {
          setTimeout(() => this.live && this.chats.get(orderId) === chat && this.subscribeNow(orderId), e.retryAfterMs ?? 1_000);
          return;
        }
        this.chats.delete(orderId); // forbidden, not_found, bad_request: not a chat of this user
        for (const w of chat.waiters.splice(0)) w.reject(e);
        this.emit("error", e);
      },
    );
  }

  private flushRead(orderId: string): void {
    const mark = this.reads.get(orderId);
    const wanted = mark?.wanted;
    if (!mark || !wanted || !this.live) return;
    mark.wanted = undefined;
    const before = mark.sent;
    mark.sent = Math.max(mark.sent, wanted.seq);
    this.request("MESSAGE_READ", { messageId: wanted.messageId }).then(
      (ack) => {
        mark.sent = Math.max(mark.sent, ack.seq);
      },
      (e: GigwireError) => {
        // Lost with the connection: wanted again, sent when live.
        if (e.code === "disconnected" || e.code === "timeout") {
          if (!mark.wanted || mark.wanted.seq < wanted.seq) mark.wanted = wanted;
          mark.sent = before;
        }
      },
    );
  }

  private clearTyping(orderId: string): boolean {
    const t = this.typingState.get(orderId);
    if (!t) return false;
    clearTimeout(t.idle);
    this.typingState.delete(orderId);
    return true;
  }

  // ---- sending chat messages, one at a time

  private pump(): void {
    if (!this.live || this.sending || this.pumpTimer !== undefined) return;
    const item = this.outbox[0];
    if (!item) return;
    this.sending = item;
    this.request("CHAT_MESSAGE", item.data).then(
      (ack) => {
        this.sending = null;
        this.outbox.shift();
        item.resolve(ack);
        this.pump();
      },
      (e: GigwireError) => {
        this.sending = null;
        if (e.code === "disconnected") return; // sent again, same clientMsgId, once live
        if (e.code === "timeout") {
          this.drop("no ACK"); // a silent connection: reconnect and resend
          return;
        }
        if (e.code === "internal" || e.code === "rate_limited") {
          // Not stored (or not confirmed): the same clientMsgId again after a pause, still first in line.
          this.pumpTimer = setTimeout(() => {
            this.pumpTimer = undefined;
            this.pump();
          }, e.retryAfterMs ?? 1_000);
          return;
        }
        this.outbox.shift();
        item.reject(e);
        this.pump();
      },
    );
  }
}
