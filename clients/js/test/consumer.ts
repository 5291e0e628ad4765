// Type-checked against the emitted declarations (dist/types) by scripts/build.mjs, never run: the
// README's quickstart as an app would write it must compile, with the events and errors typed.
import { type ChatMessage, GigwireClient, GigwireError, GigwireRest, type FeedEvent } from "../dist/types/index.js";

declare const WebSocketImpl: new (url: string) => unknown;

export async function quickstart(orderId: string): Promise<void> {
  const rest = new GigwireRest({ baseUrl: "https://gigwire.example" });
  await rest.sendOtp("+919812345678");
  const login = await rest.verifyOtp("+919812345678", "123456");
  const session = rest.session(login);
  const client = new GigwireClient({ url: "wss://gigwire.example/ws", tokens: session, WebSocket: WebSocketImpl });
  client.on("feed", (e: FeedEvent) => {
    if (e.type === "ORDER_UPDATE") {
      const status: string = e.data.status;
      const seq: number = e.data.feedSeq;
      void status, seq;
    }
  });
  client.on("message", (m: ChatMessage) => {
    if (m.senderId !== client.userId) client.markRead(m);
  });
  client.on("typing", (t) => void (t.typing && t.orderId));
  client.on("state", (s) => void (s === "unauthorized"));
  client.connect();
  const page = await session.messages(orderId);
  const sub = await client.subscribe(orderId, { sinceSeq: page.items.at(-1)?.seq ?? 0 });
  const lastSeq: number = sub.lastSeq;
  void lastSeq;
  try {
    const ack = await client.send(orderId, "On it!");
    const seq: number = ack.seq;
    void seq;
  } catch (e) {
    if (e instanceof GigwireError && e.code === "queue_full") return;
  }
  const read = await client.request("MESSAGE_READ", { messageId: "m" });
  const mark: number = read.seq;
  void mark;
}
