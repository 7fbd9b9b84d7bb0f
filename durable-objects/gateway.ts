/**
 * Gateway: holds many client WebSockets with the Hibernation API and speaks MQTT
 * on them. The class is the adapter between the runtime (sockets, alarms, RPC)
 * and its collaborators, each owning its state (DESIGN.md, "The Gateway"):
 *
 * - sockets.ts: the sockets and their Connections; wire.ts: what goes out on them;
 * - inbound.ts: what the clients send, bounded and shaped, on its way to the shards;
 * - dispatch.ts and handle-*.ts: what each packet comes to (decided in broker/protocol/);
 * - outbound.ts: fan-out, in-flight windows, what waits for each client;
 * - handover.ts: how a session leaves; closer.ts: the one door out;
 * - links.ts: calls to shards, registries and sessions; timers.ts: the alarm.
 */
import { DurableObject } from "cloudflare:workers";
import { Acl, type Principal } from "../broker/acl.ts";
import { ConnectAuthenticator, type Identity, ownerOf } from "../broker/auth/authenticator.ts";
import { HmacChallenge } from "../broker/auth/hmac-challenge.ts";
import { AuthMethods } from "../broker/auth/method.ts";
import { AuthThrottle } from "../broker/auth/throttle.ts";
import { upgradeIdentityOf } from "../broker/auth/upgrade-identity.ts";
import { type BrokerConfig, readConfig } from "../broker/config.ts";
import { Counters } from "../broker/counters.ts";
import { log, setLogLevel, takeLogLines } from "../broker/log.ts";
import { assertWithinCall, type Message } from "../broker/message.ts";
import { meteredSql } from "../broker/metered-sql.ts";
import { principalOf } from "../broker/principal.ts";
import type { CloseReason } from "../broker/protocol/close.ts";
import { gatewayDestination } from "../broker/routing.ts";
import type { OutboundPage, QueuedMessage, SessionState } from "../broker/session-state.ts";
import type { GatewayCounter, GatewayStats } from "../broker/stats.ts";
import { type DecodeError, type Packet, ReasonCode } from "../mqtt/index.ts";
import type { Env } from "../worker/env.ts";
import type { ClientInfo, GatewayRpc, ListedClients } from "./contracts.ts";
import { clientPage } from "./gateway/client-list.ts";
import { Closer } from "./gateway/closer.ts";
import type { Connection } from "./gateway/connection.ts";
import { crash, type DispatchDeps, decodeFailure, dispatch } from "./gateway/dispatch.ts";
import { Handover } from "./gateway/handover.ts";
import { Inbound } from "./gateway/inbound.ts";
import { Links } from "./gateway/links.ts";
import { Outbound } from "./gateway/outbound.ts";
import { Sockets } from "./gateway/sockets.ts";
import { GatewayStore } from "./gateway/store.ts";
import { LocalSubscriptions } from "./gateway/subscriptions.ts";
import { Timers } from "./gateway/timers.ts";
import { Wire } from "./gateway/wire.ts";
import { passwordLogins } from "./user-shard.ts";

export class Gateway extends DurableObject<Env> implements GatewayRpc {
  private readonly config: BrokerConfig;
  private readonly counters: Counters<GatewayCounter>;
  /** Public for inspection by the runtime tests (runInDurableObject), as `sockets`. */
  readonly store: GatewayStore;
  readonly sockets: Sockets;
  private readonly wire: Wire;
  private readonly links: Links;
  private readonly inbound: Inbound;
  private readonly outbound: Outbound;
  private readonly handover: Handover;
  private readonly closer: Closer;
  private readonly timers: Timers;
  /** What the packet handlers get: one object, each handler typed by its own part of it. */
  private readonly handlers: DispatchDeps;
  private nameCache: string | undefined;
  private reconciled = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const config = readConfig(env);
    this.config = config;
    setLogLevel(env.LOG_LEVEL);
    const counters = new Counters<GatewayCounter>(ctx.storage.sql);
    this.counters = counters;
    const store = new GatewayStore(meteredSql(ctx.storage.sql, (n) => counters.add("rows_written", n)));
    this.store = store;
    this.nameCache = store.getMeta("name");
    const name = () => this.name;
    const close = (conn: Connection, reason: CloseReason) => this.closer.close(conn, reason);
    this.links = new Links({ env, config, counters, destination: () => gatewayDestination(this.name) });
    this.inbound = new Inbound({
      config,
      counters,
      // What matches this gateway's own clients comes back with the codes (one call, not two).
      publishAt: async (shard, messages) => {
        const { codes, here } = await this.links.publishAt(shard, messages);
        if (here.length > 0) await this.deliverHere(here);
        return codes;
      },
      evict: (conn, refusal) =>
        void close(conn, { kind: "protocol-error", reasonCode: refusal.reasonCode, why: refusal.why }),
      readOn: (conn) => void this.readOn(conn),
    });
    this.sockets = new Sockets({ ctx, config, store, inbound: this.inbound });
    this.sockets.wake();
    this.wire = new Wire({ name, connectionOf: (ws) => this.sockets.peek(ws) });
    const subscriptions = new LocalSubscriptions(store);
    this.outbound = new Outbound({
      store,
      index: subscriptions.index,
      clients: this.sockets.clients,
      config,
      counters,
      frames: this.wire.frames,
      name,
    });
    this.closer = new Closer({
      wire: this.wire,
      end: (conn, how, why) => this.handover.end(conn, how, why),
      name,
      config,
      identity: (conn) => this.identity(conn),
      publish: (m) => this.inbound.route(m),
      waitUntil: (p) => ctx.waitUntil(p),
    });
    this.handover = new Handover({
      store,
      index: subscriptions.index,
      clients: this.sockets.clients,
      config,
      name,
      session: (clientId, call) => this.links.session(clientId, call),
      closeAtRegistry: (clientId, connId) => this.links.closeAtRegistry(clientId, connId),
      shard: (i) => this.links.shard(i),
      publish: (m) => this.inbound.route(m),
      unregister: (clientId, filters) => this.links.unregisterFilters(clientId, filters),
      farewell: (conn, reason) => void this.closer.farewell(conn, reason),
      waitUntil: (p) => ctx.waitUntil(p),
    });
    this.timers = new Timers({
      ctx,
      config,
      counters,
      store,
      sockets: this.sockets,
      close,
      stats: () => this.links.stats(),
      deliver: (messages) => this.deliver(messages),
      handOffDue: (now) => this.handOffDue(now),
      name,
    });
    this.handlers = {
      config,
      counters,
      store,
      acl: new Acl(config.acl),
      principal: (conn) => this.principal(conn),
      identity: (conn) => this.identity(conn),
      inbound: this.inbound,
      clientAliases: this.sockets.aliases.client,
      outbound: this.outbound,
      wire: this.wire,
      close,
      links: this.links,
      subscriptions,
      sockets: this.sockets,
      handover: this.handover,
      publishSys: () => this.timers.publishSys(),
      publish: (m) => this.inbound.route(m),
      scheduleCheck: (at) => this.timers.scheduleCheck(at),
      authMethods: new AuthMethods(env.AUTH_HMAC_SECRET ? [new HmacChallenge(env.AUTH_HMAC_SECRET)] : []),
      authenticator: new ConnectAuthenticator({
        allowAnonymous: env.ALLOW_ANONYMOUS === "true",
        logins: passwordLogins(env, (counter) => counters.add(counter)),
        jwt: {
          secret: env.JWT_SECRET,
          jwks: env.JWKS,
          jwksUrl: env.JWKS_URL,
          issuer: env.JWT_ISSUER,
          audience: env.JWT_AUDIENCE,
        },
        identityClaim: env.JWT_IDENTITY_CLAIM,
      }),
      authThrottle: new AuthThrottle({
        perAddress: config.authFailuresPerAddress,
        perNetwork: config.authFailuresPerNetwork,
        perGateway: config.authFailuresPerGateway,
      }),
      name,
    };
  }

  get name(): string {
    return this.nameCache ?? "gateway-unnamed";
  }

  // ---- WebSocket lifecycle -------------------------------------------------

  override async fetch(request: Request): Promise<Response> {
    this.counters.add("fetches");
    const name = request.headers.get("x-nimbus-gateway");
    if (name !== null && name !== this.nameCache) {
      this.nameCache = name;
      this.store.setMeta("name", name);
    }
    this.reconcile();
    if (this.sockets.count >= this.config.maxConnectionsPerGateway) {
      log("warn", "gateway_full", { gateway: this.name, max: this.config.maxConnectionsPerGateway });
      return new Response("gateway full\n", { status: 503 });
    }
    const now = Date.now();
    const client = this.sockets.accept(
      request.headers.get("x-nimbus-client-address"),
      now,
      upgradeIdentityOf(request.headers),
    );
    await this.timers.scheduleCheck(now + this.config.connectTimeout * 1000);
    const protocol = request.headers.get("x-nimbus-subprotocol") ?? "mqtt";
    return new Response(null, {
      status: 101,
      webSocket: client,
      headers: { "Sec-WebSocket-Protocol": protocol },
    });
  }

  override async webSocketMessage(ws: WebSocket, data: ArrayBuffer | string): Promise<void> {
    this.counters.add("ws_in");
    this.reconcile();
    const conn = this.sockets.of(ws);
    // A connection that is ending costs next to nothing per further frame.
    if (conn.finished) return;
    if (typeof data === "string") {
      // MQTT-6.0.0-1: MQTT travels in binary frames only; any other frame closes.
      const why = "text WebSocket frame (MQTT-6.0.0-1)";
      return this.closer.close(conn, { kind: "protocol-error", reasonCode: ReasonCode.MalformedPacket, why });
    }
    const now = Date.now();
    this.sockets.touch(conn, now);
    // What the gateway holds for this connection, this frame included, is bounded
    // per connection and for the gateway (inbound.ts): past either, it ends here,
    // before any of it costs more than its bytes (invariant 6).
    const refusal = this.inbound.admit(conn, data.byteLength, now);
    if (refusal !== undefined)
      return this.closer.close(conn, {
        kind: "protocol-error",
        reasonCode: refusal.reasonCode,
        why: refusal.why,
      });
    conn.decoder.feed(new Uint8Array(data));
    this.inbound.account(conn.inbound);
    await this.readOn(conn);
  }

  /** Handles the packets `conn` has buffered, unless a run is under way or its decoding is held back (inbound.ts). */
  private async readOn(conn: Connection): Promise<void> {
    // The frame that starts a run waits for it, so the runtime keeps the object
    // for its packets; frames arriving meanwhile join that run and end here.
    await conn.read((next) => this.handleNext(conn, next));
    // What the run dropped undecoded is counted (inbound.ts).
    this.inbound.account(conn.inbound);
  }

  private async handleNext(conn: Connection, next: Packet | DecodeError): Promise<void> {
    // The packet's bytes are decoded: no longer held as input.
    this.inbound.account(conn.inbound);
    if ("ok" in next) return decodeFailure(this.handlers, conn, next);
    try {
      await dispatch(this.handlers, conn, next);
    } catch (err) {
      log("error", "handler_error", {
        gateway: this.name,
        error: err instanceof Error ? err.stack : String(err),
      });
      await crash(this.handlers, conn, err);
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.reconcile();
    const conn = this.sockets.of(ws);
    try {
      // The closing handshake's answer (1005/1006 are never sent: RFC 6455 7.4.1).
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // already closed
    }
    await this.readHeld(conn);
    await this.closer.lost(conn, `socket closed (${code})`);
    this.sockets.forget(ws);
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    const conn = this.sockets.of(ws);
    await this.readHeld(conn);
    await this.closer.lost(conn, `socket error: ${String(error)}`);
    this.sockets.forget(ws);
  }

  /**
   * What a connection sent before its socket went, kept undecoded while its decoding
   * was held back (inbound.ts), is read before the loss is handled: its publishes are
   * dropped unanswered, and a DISCONNECT among it ends the session normally, its
   * will discarded (MQTT-3.14.4-3).
   */
  private async readHeld(conn: Connection): Promise<void> {
    if (conn.finished || !conn.inbound.heldBack) return;
    conn.inbound.lift();
    await conn.idle();
    await this.readOn(conn);
  }

  /** Keep-alive (1.5 × the client's interval, 3.1.1 MQTT-3.1.2-24 / 5.0 MQTT-3.1.2-22), CONNECT timeout and $SYS (timers.ts). */
  override async alarm(): Promise<void> {
    this.counters.add("alarms");
    this.reconcile();
    await this.timers.alarm();
  }

  // ---- RPC from TopicShards, Sessions, Registries and the Worker -----------

  /** A shard hands over messages that match filters of this gateway's clients. */
  async deliver(messages: Message[]): Promise<void> {
    this.counters.add("rpc_in");
    assertWithinCall(messages);
    await this.deliverHere(messages);
  }

  /** Hands messages from a shard to the clients here: a `deliver`, or the answer to a publish (links.publishAt). */
  private async deliverHere(messages: Message[]): Promise<void> {
    this.reconcile();
    // Clients no longer here whose Session keeps their messages, and clients here
    // whose queue is still coming from it (they go behind the queue, at once).
    // Sessions held here since a restart keep theirs in their rows (handover.ts).
    const forward = this.handover.keepHeld(this.outbound.fanOut(messages));
    await Promise.all(
      [...forward].map(([clientId, list]) => {
        const conn = this.sockets.clients.get(clientId);
        const heldBy =
          conn !== undefined && !conn.finished && conn.backlog ? conn.connected?.connId : undefined;
        const appended = this.links.session(clientId, (s) => s.append(list, heldBy));
        if (heldBy !== undefined && conn !== undefined) {
          conn.backlogAppends.add(appended);
          void appended.finally(() => conn.backlogAppends.delete(appended)).catch(() => {});
        }
        return appended;
      }),
    );
  }

  /** A Session passes on messages for its client, which is online here. */
  async deliverTo(clientId: string, connId: string, entries: QueuedMessage[]): Promise<boolean> {
    this.counters.add("rpc_in");
    assertWithinCall(entries.map((e) => e.message));
    const conn = this.sockets.clients.get(clientId);
    // While the queue is still coming from the Session, newer messages wait behind it there.
    if (conn === undefined || conn.finished || conn.backlog || conn.connected?.connId !== connId)
      return false;
    this.outbound.deliverQueued(conn, entries);
    return true;
  }

  /** A Session takes the client away from this gateway (handover.ts). */
  async takeover(clientId: string, connId: string): Promise<SessionState | null> {
    this.counters.add("rpc_in");
    this.reconcile();
    return this.handover.takeover(clientId, connId);
  }

  /** A newer clean connection took the client id at its Registry: this one ends (handover.ts). */
  async discard(clientId: string, connId: string): Promise<void> {
    this.counters.add("rpc_in");
    this.reconcile();
    await this.handover.discard(clientId, connId);
  }

  /** The next page of a session that is being parked or taken over (handover.ts). */
  async outboundPage(clientId: string, connId: string, after: number): Promise<OutboundPage | null> {
    this.counters.add("rpc_in");
    return this.handover.outboundPage(clientId, connId, after);
  }

  /** The client's subscriptions are registered elsewhere now: forget it here. */
  async forget(clientId: string, connId: string): Promise<void> {
    this.counters.add("rpc_in");
    await this.handover.forgetMoved(clientId, connId);
  }

  /**
   * Disconnects every client of this gateway, 5.0 clients with DISCONNECT 0x8B
   * Server shutting down (or the code given): before the gateway is retired, say.
   * Persistent sessions are kept by their Session objects; wills are published.
   */
  async disconnectAll(reasonCode: number = ReasonCode.ServerShuttingDown): Promise<number> {
    this.counters.add("rpc_in");
    this.reconcile();
    const conns = this.sockets.live();
    await Promise.all(conns.map((conn) => this.closer.close(conn, { kind: "shutdown", reasonCode })));
    return conns.length;
  }

  /**
   * Disconnects one client, 5.0 clients with DISCONNECT `reasonCode` (0x98
   * Administrative action from the HTTP API) once they have their CONNACK. Its
   * teardown runs afterwards, so a Session waiting on this call is not waited on in turn.
   */
  async disconnect(clientId: string, reasonCode: number): Promise<boolean> {
    this.counters.add("rpc_in");
    const conn = this.sockets.clients.get(clientId);
    if (conn === undefined || conn.finished) return false;
    this.ctx.waitUntil(this.closer.close(conn, { kind: "administrator", reasonCode }));
    return true;
  }

  /** What the HTTP API shows of an online client. */
  async clientInfo(clientId: string): Promise<ClientInfo | null> {
    this.counters.add("rpc_in");
    if (this.store.getClient(clientId) === undefined) return null;
    const held = this.sockets.clients.get(clientId)?.window?.heldInFlight ?? 0;
    return {
      subscriptions: this.store.subsOf(clientId).map(([f]) => f),
      inflight: this.store.inflightCount(clientId) + held,
    };
  }

  /** A page of the clients connected here (GET /api/clients). */
  async clients(prefix: string, after: string | null, limit: number): Promise<ListedClients> {
    this.counters.add("rpc_in");
    const online = this.sockets.live().flatMap((conn) => {
      const att = conn.connected;
      if (att === undefined || !conn.ready) return [];
      return [
        { clientId: att.clientId, persistent: att.persistent, owner: () => ownerOf(this.identity(conn)) },
      ];
    });
    return clientPage(online, prefix, after, limit);
  }

  /** Numbers for /api/stats, /metrics and $SYS. */
  async stats(): Promise<GatewayStats> {
    // A stats call is a billed request too ($SYS and the API make them).
    this.counters.add("rpc_in");
    this.counters.add("log_lines", takeLogLines());
    this.counters.flush();
    return {
      gateway: this.name,
      connections: this.sockets.live().length,
      sockets: this.ctx.getWebSockets().length,
      subscriptions: this.store.totalSubscriptions(),
      counters: this.counters.snapshot(),
    };
  }

  // ---- who a client is -----------------------------------------------------

  /** Who a connected client is, for authorization. */
  private principal(conn: Connection): Principal {
    const att = conn.connected as NonNullable<Connection["connected"]>;
    return principalOf(att.clientId, this.identity(conn));
  }

  /** The identity a connected client authenticated as (stored with its client record, cached on the connection). */
  private identity(conn: Connection): Identity {
    const clientId = conn.connected?.clientId;
    // A record without one cannot be: every accepted CONNECT stores it. Were it
    // missing, the client is treated as no one in particular, never as a user.
    conn.identity ??= (clientId === undefined ? undefined : this.store.getClient(clientId)?.identity) ?? {
      via: "anonymous",
    };
    return conn.identity;
  }

  /**
   * After a restart (not a hibernation wake) the sockets are gone but storage
   * still lists their clients: end those sessions as abnormal closes, once, but
   * for persistent ones, held for their clients to resume them here for
   * RESUME_GRACE_MS (handover.ts). When the sockets were lost is kept in storage
   * while any session is held: a wake in the meantime holds them no longer.
   */
  private reconcile(): void {
    if (this.reconciled) return;
    this.reconciled = true;
    const live = new Set<string>();
    for (const ws of this.ctx.getWebSockets()) {
      const att = this.sockets.of(ws).connected;
      if (att !== undefined) live.add(att.connId);
    }
    const orphans = this.store
      .allClients()
      .filter((record) => !live.has(record.connId) && !record.connId.startsWith("moved:"));
    if (orphans.length === 0) return;
    const now = Date.now();
    const lostAt = Number(this.store.getMeta(LOST_AT) ?? 0) || now;
    log("info", "orphaned_sessions", { gateway: this.name, count: orphans.length, lostAt });
    // A few at a time (handover.ts): their clients are connecting again meanwhile.
    const due = this.handover.handOffOrphans(orphans, lostAt, now);
    if (due === undefined) return;
    if (lostAt === now) this.store.setMeta(LOST_AT, String(lostAt));
    this.ctx.waitUntil(this.timers.scheduleCheck(due));
  }

  /** The alarm: hands off the sessions held past their grace; when the next is due (timers.ts). */
  private async handOffDue(now: number): Promise<number | undefined> {
    const next = await this.handover.handOffDue(now);
    if (!this.handover.holding && this.store.getMeta(LOST_AT) !== "0") this.store.setMeta(LOST_AT, "0");
    return next;
  }
}

/** Meta key: when this gateway's sockets were lost, while it holds sessions since (reconcile). */
const LOST_AT = "sockets_lost_at";
