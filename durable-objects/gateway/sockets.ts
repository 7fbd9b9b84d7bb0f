/**
 * The sockets a gateway holds (Hibernation API) and the Connection of each: made
 * when a socket is accepted, rebuilt from its attachment when the object wakes,
 * and the connected ones by client id.
 */
import type { UpgradeIdentity } from "../../broker/auth/upgrade-identity.ts";
import type { BrokerConfig } from "../../broker/config.ts";
import { type Attachment, Connection } from "./connection.ts";
import type { Inbound } from "./inbound.ts";
import type { GatewayStore } from "./store.ts";
import { type AliasBudgets, aliasBudgets } from "./topic-aliases.ts";

/** How often, at most, lastSeen is written to the attachment (ms). */
const LAST_SEEN_GRAIN = 5_000;

export interface SocketsDeps {
  ctx: Pick<DurableObjectState, "getWebSockets" | "acceptWebSocket">;
  config: Pick<BrokerConfig, "maxPacketSize">;
  store: Pick<GatewayStore, "getClient">;
  inbound: Pick<Inbound, "attach">;
}

export class Sockets {
  /** Live connections by client id (a connection taken over or ended leaves it). */
  readonly clients = new Map<string, Connection>();
  /** The topic aliases all connections hold, each way (topic-aliases.ts). */
  readonly aliases: AliasBudgets<Connection> = aliasBudgets();
  private readonly connections = new Map<WebSocket, Connection>();
  private readonly deps: SocketsDeps;

  constructor(deps: SocketsDeps) {
    this.deps = deps;
  }

  /** Every socket's Connection, rebuilt after the object woke (hibernation, eviction). */
  wake(): void {
    for (const ws of this.deps.ctx.getWebSockets()) this.of(ws);
  }

  /** Sockets held: each has its Connection, so counting them costs nothing. */
  get count(): number {
    return this.connections.size;
  }

  /** Accepts a new socket, waiting for CONNECT; the client's end of the pair. */
  accept(address: string | null, now: number, upgrade?: UpgradeIdentity): WebSocket {
    const pair = new WebSocketPair();
    const server = pair[1];
    this.deps.ctx.acceptWebSocket(server);
    const att: Attachment = { phase: "awaiting-connect", openedAt: now };
    if (address !== null && address !== "") att.address = address.slice(0, 64);
    if (upgrade !== undefined) att.upgrade = upgrade;
    server.serializeAttachment(att);
    this.connections.set(server, this.connection(server, att));
    return pair[0];
  }

  /** The Connection of a socket, rebuilt from its attachment after hibernation. */
  of(ws: WebSocket): Connection {
    let conn = this.connections.get(ws);
    if (conn === undefined) {
      const att = (ws.deserializeAttachment() as Attachment | null) ?? {
        phase: "awaiting-connect",
        openedAt: Date.now(),
      };
      conn = this.connection(ws, att);
      if (att.phase === "connected") {
        conn.ready = true;
        // Still this connection's session (not taken over meanwhile)?
        const record = this.deps.store.getClient(att.clientId);
        if (record?.connId === att.connId) this.clients.set(att.clientId, conn);
        else conn.detach();
      }
      this.connections.set(ws, conn);
    }
    return conn;
  }

  /** The Connection of a socket, if it has one now (no rebuilding). */
  peek(ws: WebSocket): Connection | undefined {
    return this.connections.get(ws);
  }

  /** The socket is gone. */
  forget(ws: WebSocket): void {
    this.connections.delete(ws);
  }

  /** Connected clients whose connection is not ending. */
  live(): Connection[] {
    return [...this.clients.values()].filter((c) => !c.finished);
  }

  /** Records activity for keep-alive; the attachment is rewritten only now and then. */
  touch(conn: Connection, now = Date.now()): void {
    conn.lastSeen = now;
    const att = conn.connected;
    if (att !== undefined && now - att.lastSeen > LAST_SEEN_GRAIN) {
      att.lastSeen = now;
      conn.save();
    }
  }

  private connection(ws: WebSocket, att: Attachment): Connection {
    return new Connection(
      ws,
      att,
      this.deps.config.maxPacketSize,
      (conn) => this.deps.inbound.attach(conn),
      this.aliases,
    );
  }
}
