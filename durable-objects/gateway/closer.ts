/**
 * The one door out: every way a connection ends goes through `close` with a
 * reason from broker/protocol/close.ts, whose table says what the client is
 * sent, how the socket closes and how the session leaves.
 */
import type { Identity } from "../../broker/auth/identity.ts";
import type { BrokerConfig } from "../../broker/config.ts";
import { log } from "../../broker/log.ts";
import type { Message } from "../../broker/message.ts";
import { presenceMessage } from "../../broker/presence.ts";
import { type CloseReason, goodbye, type SessionEnding } from "../../broker/protocol/close.ts";
import { reasonName } from "../../mqtt/index.ts";
import type { Connection } from "./connection.ts";
import type { Wire } from "./wire.ts";

export interface CloserDeps {
  config: Pick<BrokerConfig, "presence">;
  identity(conn: Connection): Identity | undefined;
  publish(m: Message): Promise<unknown>;
  waitUntil(p: Promise<unknown>): void;
  wire: Pick<Wire, "send" | "closeSocket">;
  /** The session leaves the connection (handover.ts): with its will or without. */
  end(conn: Connection, how: Exclude<SessionEnding, "moved">, why: string): Promise<void>;
  name(): string;
}

export class Closer {
  private readonly deps: CloserDeps;

  constructor(deps: CloserDeps) {
    this.deps = deps;
  }

  /**
   * Says goodbye as the reason's table row says: DISCONNECT to a 5.0 client that
   * has its CONNACK (MQTT-3.14.0-1: never before), then the close frame. The
   * session is not touched: `close` does that, and a takeover moves it instead.
   */
  farewell(conn: Connection, reason: CloseReason): SessionEnding {
    this.announce(conn, reason);
    const g = goodbye(reason);
    if (g.disconnect !== undefined && conn.ready && conn.version === 5)
      this.deps.wire.send(conn, { type: "disconnect", reasonCode: g.disconnect });
    this.deps.wire.closeSocket(conn, g.closeCode, g.why.slice(0, 100));
    return g.ending;
  }

  /** The disconnected presence event (docs/sys-topics.md, Presence), once per connection that had CONNACK. */
  announce(conn: Connection, reason: CloseReason): void {
    const att = conn.connected;
    if (!conn.ready || conn.goneAnnounced || att === undefined) return;
    conn.goneAnnounced = true;
    const identity = this.deps.identity(conn);
    if (identity === undefined) return;
    const m = presenceMessage(
      this.deps.config.presence,
      {
        event: "disconnected",
        reason,
        clientId: att.clientId,
        connectionId: att.connId,
        identity,
        protocolLevel: att.version,
        address: att.address,
        time: Date.now(),
      },
      this.deps.name(),
    );
    if (m !== undefined) this.deps.waitUntil(this.deps.publish(m).catch(() => {}));
  }

  /** Ends a connection for `reason`: farewell, then its session leaves (once). */
  close(conn: Connection, reason: CloseReason): Promise<void> {
    if (conn.finished) return Promise.resolve();
    if (reason.kind === "protocol-error" || reason.kind === "internal-error") {
      log(reason.kind === "internal-error" ? "error" : "warn", "protocol_error", {
        gateway: this.deps.name(),
        clientId: conn.connected?.clientId,
        reason: reason.kind === "protocol-error" ? reasonName(reason.reasonCode) : "internal",
        message: reason.kind === "protocol-error" ? reason.why : reason.detail,
      });
    }
    const ending = this.farewell(conn, reason);
    if (ending === "moved") return Promise.resolve();
    return this.deps.end(conn, ending, goodbye(reason).why);
  }

  /**
   * The socket went away under us (the client's close frame, or an error): there
   * is no one left to say goodbye to, so only the presence event and the
   * session's abnormal end (its will is published, MQTT-3.1.2-8).
   */
  lost(conn: Connection, detail: string): Promise<void> {
    this.announce(conn, { kind: "socket-closed", detail });
    return this.deps.end(conn, "abnormal", detail);
  }
}
