/**
 * The runtime's floor: a Durable Object that accepts hibernatable WebSockets and
 * does nothing with a binary message but count it. What workerd spends per
 * message here, Nimbus cannot spend less on an inbound PUBLISH or PUBACK; the
 * connects a second it takes, and how it serves one socket while others flood it,
 * are what no broker on this runtime can better.
 * `npm run bench:floor` drives it; it is not part of the broker.
 */
import { DurableObject } from "cloudflare:workers";

export class Sink extends DurableObject {
  private count = 0;
  /** Binary messages per socket (a socket's own share of the object's turns). */
  private readonly perSocket = new Map<WebSocket, number>();

  override async fetch(request: Request): Promise<Response> {
    if (request.headers.get("Upgrade") !== "websocket") return new Response(String(this.count));
    const pair = new WebSocketPair();
    this.ctx.acceptWebSocket(pair[1]);
    return new Response(null, { status: 101, webSocket: pair[0] });
  }

  override webSocketMessage(ws: WebSocket, data: ArrayBuffer | string): void {
    // A text frame asks how many binary ones arrived so far: "mine" on this socket, else in all.
    if (typeof data === "string")
      ws.send(String(data === "mine" ? (this.perSocket.get(ws) ?? 0) : this.count));
    else {
      this.count++;
      this.perSocket.set(ws, (this.perSocket.get(ws) ?? 0) + 1);
    }
  }

  override webSocketClose(ws: WebSocket): void {
    this.perSocket.delete(ws);
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
