/**
 * The runtime's floor: a Durable Object that accepts hibernatable WebSockets and
 * does nothing with a binary message but count it. What workerd spends per
 * message here, Nimbus cannot spend less on an inbound PUBLISH or PUBACK.
 * `npm run bench:floor` drives it; it is not part of the broker.
 */
import { DurableObject } from "cloudflare:workers";

export class Sink extends DurableObject {
  private count = 0;

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade") !== "websocket") return new Response(String(this.count));
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  override webSocketMessage(ws: WebSocket, data: ArrayBuffer | string): void {
    // A text frame asks how many binary ones arrived so far.
    if (typeof data === "string") ws.send(String(this.count));
    else this.count++;
  }
}

interface Env {
  SINK: DurableObjectNamespace<Sink>;
}

export default {
  fetch(request: Request, env: Env): Promise<Response> | Response {
    if (new URL(request.url).pathname === "/") return new Response("ok");
    return env.SINK.get(env.SINK.idFromName("sink")).fetch(request);
  },
};
