/**
 * What goes out on a connection's socket: packets (gathered into one frame per
 * socket while a batch is delivered, frames.ts) and the close frame.
 */
import { log } from "../../broker/log.ts";
import { encode, type Packet } from "../../mqtt/index.ts";
import type { Connection } from "./connection.ts";
import { FrameGatherer } from "./frames.ts";

export interface WireDeps {
  /** The gateway's name, for logs. */
  name(): string;
  /** The connection of a socket, if it still has one (to log a failing socket once). */
  connectionOf(ws: WebSocket): Connection | undefined;
}

export class Wire {
  readonly frames: FrameGatherer;
  private readonly deps: WireDeps;

  constructor(deps: WireDeps) {
    this.deps = deps;
    this.frames = new FrameGatherer((ws, bytes) => this.write(ws, bytes));
  }

  send(conn: Connection, packet: Packet, version = conn.version): void {
    this.frames.send(conn.ws, encode(packet, version));
  }

  /** Sends what is gathered for the socket, then the close frame. */
  closeSocket(conn: Connection, code: number, reason: string): void {
    this.frames.flush(conn.ws);
    try {
      conn.ws.close(code, reason);
    } catch {
      // already closed
    }
  }

  /** Reason String and User Property only if the client did not ask to go without (MQTT-3.1.2-29). */
  ackProperties(conn: Connection, reasonString: string): { reasonString: string } | undefined {
    return conn.connected?.noProblemInfo || conn.version !== 5 ? undefined : { reasonString };
  }

  private write(ws: WebSocket, bytes: Uint8Array): void {
    try {
      ws.send(bytes);
    } catch (err) {
      // Once per socket: a closed socket fails every send after it.
      if (this.deps.connectionOf(ws)?.firstTime("send_failed") ?? true)
        log("warn", "send_failed", { gateway: this.deps.name(), error: String(err) });
    }
  }
}
