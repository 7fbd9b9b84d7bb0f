/**
 * Gateway: holds many client WebSockets with the Hibernation API, speaks MQTT on
 * them, and keeps a local table of which of its clients subscribe to what.
 * TopicShards deliver to it once per batch; it fans out to its own clients.
 */
import { DurableObject } from "cloudflare:workers";

import { Acl, type Principal } from "../broker/acl.ts";

import { type Authenticator, ConnectAuthenticator, type Identity } from "../broker/auth/authenticator.ts";

import { HmacChallenge } from "../broker/auth/hmac-challenge.ts";

import { AuthMethods } from "../broker/auth/method.ts";

import { AuthThrottle } from "../broker/auth/throttle.ts";

import { KeyedBatcher } from "../broker/batcher.ts";

import { type BrokerConfig, readConfig } from "../broker/config.ts";

import { Counters } from "../broker/counters.ts";

import { log, setLogLevel, takeLogLines } from "../broker/log.ts";

import { assertWithinCall, type Message, RPC_BATCH_BYTES, RPC_BATCH_MESSAGES } from "../broker/message.ts";

import { meteredSql } from "../broker/metered-sql.ts";

import { gatewayDestination, registryName } from "../broker/routing.ts";

import type {
  OutboundPage,
  QueuedMessage,
  SessionState,
  SubscriptionOptions,
} from "../broker/session-state.ts";

import type { GatewayCounter, GatewayStats } from "../broker/stats.ts";

import {
  type DecodeError,
  type DisconnectPacket,
  encode,
  type Packet,
  ReasonCode,
  reasonName,
  SubscriptionIndex,
} from "../mqtt/index.ts";

import type { Env } from "../worker/env.ts";
import type {
  ClaimRequest,
  Ended,
  GatewayRpc,
  RegistryClaim,
  Reply,
  SessionRpc,
  ShardRpc,
} from "./contracts.ts";
import { type Attachment, Connection } from "./gateway/connection.ts";
import { FrameGatherer } from "./gateway/frames.ts";
import { handleAck } from "./gateway/handle-acks.ts";
import { handleAuth } from "./gateway/handle-auth.ts";
import { handleConnect, principalOf } from "./gateway/handle-connect.ts";
import { handlePublish } from "./gateway/handle-publish.ts";
import { handleSubscribe, handleUnsubscribe } from "./gateway/handle-subscribe.ts";
import { type Ending, Handover } from "./gateway/handover.ts";
import { Inbound } from "./gateway/inbound.ts";
import { Outbound } from "./gateway/outbound.ts";
import { GatewayStore } from "./gateway/store.ts";
import { sysMessages } from "./gateway/sys-topics.ts";
import { isShared, type RetainedFrom, registerAtShards, unregisterAtShards } from "./registration.ts";
import {
  callSession,
  collectStats,
  meterSession,
  registryStub,
  registryStubNamed,
  sessionStub,
  shardStub,
} from "./stubs.ts";
import { passwordLogins } from "./user-shard.ts";

/** How often, at most, lastSeen is written to the attachment (ms). */
const LAST_SEEN_GRAIN = 5_000;

export class Gateway extends DurableObject<Env> implements GatewayRpc {
  readonly config: BrokerConfig;
  readonly store: GatewayStore;
  /** filter → clientId → options, for this gateway's clients only. */
  readonly index = new SubscriptionIndex<SubscriptionOptions>();
  private readonly connections = new Map<WebSocket, Connection>();
  /** Live connections by client id. */
  readonly clients = new Map<string, Connection>();
  /** What the clients send, from the frame to the shard: bounds, rates, turns (inbound.ts). */
  readonly inbound: Inbound;
  private readonly shardStubs = new Map<number, ShardRpc>();
  /** Ended clean connections, per registry: a storm of disconnects is a few calls. */
  private readonly registryCloses: KeyedBatcher<string, Ended, undefined>;
  private readonly frames = new FrameGatherer((ws, bytes) => this.write(ws, bytes));
  /** Enhanced authentication methods on offer (5.0 4.12). */
  readonly authMethods: AuthMethods;
  /** Credentials at CONNECT: anonymous, password or JWT. */
  readonly authenticator: Authenticator;
  /** Failed authentications, per client address and for this gateway. */
  readonly authThrottle: AuthThrottle;
  readonly acl: Acl;
  private nameCache: string | undefined;
  readonly counters: Counters<GatewayCounter>;
  private reconciled = false;
  /** Matching, in-flight windows, held messages, aliases out: what leaves on the sockets. */
  readonly outbound: Outbound;
  /** How sessions leave: ending connections, takeover, parking, forgetting. */
  readonly handover: Handover;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.config = readConfig(env);
    setLogLevel(env.LOG_LEVEL);
    this.authMethods = new AuthMethods(env.AUTH_HMAC_SECRET ? [new HmacChallenge(env.AUTH_HMAC_SECRET)] : []);
    this.authenticator = new ConnectAuthenticator({
      allowAnonymous: env.ALLOW_ANONYMOUS === "true",
      logins: passwordLogins(env, (counter) => this.counters.add(counter)),
      jwt: {
        secret: env.JWT_SECRET,
        jwks: env.JWKS,
        jwksUrl: env.JWKS_URL,
        issuer: env.JWT_ISSUER,
        audience: env.JWT_AUDIENCE,
      },
      identityClaim: env.JWT_IDENTITY_CLAIM,
    });
    this.authThrottle = new AuthThrottle({
      perAddress: this.config.authFailuresPerAddress,
      perNetwork: this.config.authFailuresPerNetwork,
      perGateway: this.config.authFailuresPerGateway,
    });
    this.acl = new Acl(this.config.acl);
    this.counters = new Counters(ctx.storage.sql);
    this.store = new GatewayStore(meteredSql(ctx.storage.sql, (n) => this.counters.add("rows_written", n)));
    this.nameCache = this.store.getMeta("name");
    // Shared subscriptions stay out of the local index: a shard picks their member (matchTarget).
    for (const { clientId, filter, options } of this.store.allSubs())
      if (!isShared(filter)) this.index.add(filter, clientId, options);
    this.inbound = new Inbound({
      config: this.config,
      counters: this.counters,
      publishAt: (shard, messages) =>
        this.shard(shard)
          .publish(messages)
          .catch((err: unknown) => {
            this.shardFailed(shard);
            throw err;
          }),
      evict: (conn, refusal) => void this.fail(conn, refusal.reasonCode, refusal.why),
    });
    for (const ws of ctx.getWebSockets()) this.connectionOf(ws);
    this.registryCloses = new KeyedBatcher(
      async (registry, ended) => {
        this.counters.add("registry_calls");
        const rows = await registryStubNamed(this.env, registry).close(ended);
        if (rows > 0) this.counters.add("registry_rows", rows);
        return undefined;
      },
      {
        maxItems: RPC_BATCH_MESSAGES,
        maxBytes: RPC_BATCH_BYTES,
        sizeOf: (r) => 64 + 2 * (r.clientId.length + r.connId.length),
      },
    );
    const name = () => this.name;
    this.outbound = new Outbound({
      store: this.store,
      index: this.index,
      clients: this.clients,
      config: this.config,
      counters: this.counters,
      frames: this.frames,
      name,
    });
    this.handover = new Handover({
      store: this.store,
      index: this.index,
      clients: this.clients,
      config: this.config,
      name,
      session: (clientId, call) => this.session(clientId, call),
      closeAtRegistry: (clientId, connId) => this.closeAtRegistry(clientId, connId),
      shard: (i) => this.shard(i),
      publish: (m) => this.publishMessage(m),
      unregister: (clientId, filters) => this.unregisterFilters(clientId, filters),
      send: (conn, packet) => this.send(conn, packet),
      closeSocket: (conn, code, reason) => this.closeSocket(conn, code, reason),
      waitUntil: (p) => this.ctx.waitUntil(p),
    });
  }

  get name(): string {
    return this.nameCache ?? "gateway-unnamed";
  }

  get destination() {
    return gatewayDestination(this.name);
  }

  // ---- stubs -------------------------------------------------------------

  /**
   * A shard's stub (each call is a billed request, counted at the shard). One per
   * shard, kept: calls on one stub arrive in order (invariant 3), and making a
   * stub costs an id's hash and a channel. One that failed is replaced, as a
   * stub may be broken after an exception.
   */
  shard(index: number): ShardRpc {
    let stub = this.shardStubs.get(index);
    if (stub === undefined) {
      stub = shardStub(this.env, index);
      this.shardStubs.set(index, stub);
    }
    return stub;
  }

  /** Forgets a shard's stub after a call on it failed. */
  private shardFailed(index: number): void {
    this.shardStubs.delete(index);
  }

  /**
   * Claims a client id for a new connection at its Registry (which goes on to the
   * client's Session where it has one): counted here, with what both did.
   */
  async claim(request: ClaimRequest): Promise<RegistryClaim> {
    this.counters.add("registry_calls");
    const claim = await registryStub(this.env, request.clientId).claim(request);
    if (claim.rowsWritten > 0) this.counters.add("registry_rows", claim.rowsWritten);
    if (claim.session !== undefined) meterSession(this.counters, claim.session);
    return claim;
  }

  /** A clean session's connection ended: its Registry lets the client id go (batched per registry). */
  closeAtRegistry(clientId: string, connId: string): Promise<void> {
    return this.registryCloses.add(registryName(clientId), { clientId, connId });
  }

  /** Calls a client's Session: counted here, with what it reports of its own work. */
  session<T>(clientId: string, call: (session: SessionRpc) => Promise<Reply<T>>): Promise<T> {
    return callSession(sessionStub(this.env, clientId), this.counters, call);
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
    // Every socket has its Connection (made at accept, or at wake-up in the
    // constructor): counting them costs nothing, unlike listing the sockets.
    if (this.connections.size >= this.config.maxConnectionsPerGateway) {
      log("warn", "gateway_full", { gateway: this.name, max: this.config.maxConnectionsPerGateway });
      return new Response("gateway full\n", { status: 503 });
    }
    const protocol = request.headers.get("x-nimbus-subprotocol") ?? "mqtt";
    const pair = new WebSocketPair();
    const server = pair[1];
    this.ctx.acceptWebSocket(server);
    const att: Attachment = { phase: "awaiting-connect", openedAt: Date.now() };
    const address = request.headers.get("x-nimbus-client-address");
    if (address !== null && address !== "") att.address = address.slice(0, 64);
    server.serializeAttachment(att);
    this.connections.set(server, this.newConnection(server, att));
    await this.scheduleCheck(att.openedAt + this.config.connectTimeout * 1000);
    return new Response(null, {
      status: 101,
      webSocket: pair[0],
      headers: { "Sec-WebSocket-Protocol": protocol },
    });
  }

  override async webSocketMessage(ws: WebSocket, data: ArrayBuffer | string): Promise<void> {
    this.counters.add("ws_in");
    this.reconcile();
    const conn = this.connectionOf(ws);
    if (conn.finished) return;
    if (typeof data === "string") {
      // MQTT-6.0.0-1: MQTT travels in binary frames only; any other frame closes.
      return this.fail(conn, ReasonCode.MalformedPacket, "text WebSocket frame (MQTT-6.0.0-1)");
    }
    this.touch(conn);
    // What the gateway holds for this connection, this frame included, is bounded
    // per connection and for the gateway (inbound.ts): past either, it ends here,
    // before any of it costs more than its bytes (invariant 6).
    const refusal = this.inbound.admit(conn, data.byteLength);
    if (refusal !== undefined) return this.fail(conn, refusal.reasonCode, refusal.why);
    conn.decoder.feed(new Uint8Array(data));
    this.inbound.account(conn.inbound);
    // The frame that starts a run waits for it, so the runtime keeps the object
    // for its packets; frames arriving meanwhile join that run and end here.
    await conn.read((next) => this.handleNext(conn, next));
  }

  private async handleNext(conn: Connection, next: Packet | DecodeError): Promise<void> {
    // The packet's bytes are decoded: no longer held as input.
    this.inbound.account(conn.inbound);
    if ("ok" in next) return this.decodeFailure(conn, next);
    try {
      await this.dispatch(conn, next);
    } catch (err) {
      await this.crash(conn, err);
    }
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.reconcile();
    const conn = this.connectionOf(ws);
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, reason);
    } catch {
      // already closed
    }
    await this.end(conn, "abnormal", `socket closed (${code})`);
    this.connections.delete(ws);
  }

  override async webSocketError(ws: WebSocket, error: unknown): Promise<void> {
    const conn = this.connectionOf(ws);
    await this.end(conn, "abnormal", `socket error: ${String(error)}`);
    this.connections.delete(ws);
  }

  /** Keep-alive (1.5 × the client's interval, MQTT-3.1.2-24) and CONNECT timeout. */
  override async alarm(): Promise<void> {
    this.counters.add("alarms");
    this.reconcile();
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const ws of this.ctx.getWebSockets()) {
      const conn = this.connectionOf(ws);
      if (conn.finished) continue;
      const att = conn.att;
      if (att.phase === "awaiting-connect") {
        const deadline = att.openedAt + this.config.connectTimeout * 1000;
        if (deadline <= now) {
          log("info", "connect_timeout", { gateway: this.name });
          this.closeSocket(conn, 1000, "no CONNECT");
          await this.end(conn, "abnormal", "no CONNECT in time");
        } else next = Math.min(next, deadline);
        continue;
      }
      if (att.keepAlive === 0) continue;
      const deadline = conn.lastSeen + att.keepAlive * 1500;
      if (deadline <= now) {
        await this.fail(conn, ReasonCode.KeepAliveTimeout, "keep-alive expired (MQTT-3.1.2-24)");
      } else next = Math.min(next, deadline);
    }
    if (this.store.hasSysSubscription()) {
      if (now >= this.sysDue) await this.publishSys();
      next = Math.min(next, this.sysDue);
    }
    if (next !== Number.POSITIVE_INFINITY) await this.setAlarm(next);
  }

  /** When $SYS is next due; in memory: after an eviction it is due at once. */
  private sysDue = 0;

  /** Publishes $SYS topics to this gateway's subscribers of them, and plans the next round. */
  async publishSys(): Promise<void> {
    const now = Date.now();
    this.sysDue = now + this.config.sysInterval * 1000;
    let started = Number(this.store.getMeta("started") ?? 0);
    if (started === 0) {
      started = now;
      this.store.setMeta("started", String(now));
    }
    try {
      const stats = await collectStats(this.env, this.config);
      await this.deliver(sysMessages(stats, Math.floor((now - started) / 1000), now));
    } catch (err) {
      log("warn", "sys_failed", { gateway: this.name, error: String(err) });
    }
    await this.scheduleCheck(this.sysDue);
  }

  // ---- RPC from TopicShards and Sessions -----------------------------------

  /** A shard hands over messages that match filters of this gateway's clients. */
  async deliver(messages: Message[]): Promise<void> {
    this.counters.add("rpc_in");
    assertWithinCall(messages);
    this.reconcile();
    // Clients no longer here whose Session keeps their messages.
    const forward = this.outbound.fanOut(messages);
    await Promise.all([...forward].map(([clientId, list]) => this.session(clientId, (s) => s.append(list))));
  }

  /** A Session passes on messages for its client, which is online here. */
  async deliverTo(clientId: string, connId: string, entries: QueuedMessage[]): Promise<boolean> {
    this.counters.add("rpc_in");
    assertWithinCall(entries.map((e) => e.message));
    const conn = this.clients.get(clientId);
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

  /**
   * Disconnects every client of this gateway, 5.0 clients with DISCONNECT 0x8B
   * Server shutting down (or the code given): before the gateway is retired, say.
   * Persistent sessions are kept by their Session objects; wills are published.
   */
  async disconnectAll(reasonCode: number = ReasonCode.ServerShuttingDown): Promise<number> {
    this.counters.add("rpc_in");
    this.reconcile();
    const conns = [...this.clients.values()].filter((c) => !c.finished);
    await Promise.all(
      conns.map((conn) => {
        if (conn.version === 5) this.send(conn, { type: "disconnect", reasonCode });
        this.closeSocket(conn, 1001, reasonName(reasonCode));
        return this.handover.end(conn, "abnormal", `server: ${reasonName(reasonCode)}`);
      }),
    );
    return conns.length;
  }

  /**
   * Disconnects one client, 5.0 clients with DISCONNECT `reasonCode` (0x98
   * Administrative action from the HTTP API). Its teardown runs afterwards, so a
   * Session waiting on this call is not waited on in turn.
   */
  async disconnect(clientId: string, reasonCode: number): Promise<boolean> {
    this.counters.add("rpc_in");
    const conn = this.clients.get(clientId);
    if (conn === undefined || conn.finished) return false;
    if (conn.version === 5) this.send(conn, { type: "disconnect", reasonCode });
    this.closeSocket(conn, 1000, reasonName(reasonCode));
    this.ctx.waitUntil(this.handover.end(conn, "abnormal", `administrator: ${reasonName(reasonCode)}`));
    return true;
  }

  /** What the HTTP API shows of an online client. */
  async clientInfo(clientId: string): Promise<{ subscriptions: string[]; inflight: number } | null> {
    this.counters.add("rpc_in");
    if (this.store.getClient(clientId) === undefined) return null;
    return {
      subscriptions: this.store.subsOf(clientId).map(([f]) => f),
      inflight: this.store.inflightCount(clientId) + (this.clients.get(clientId)?.window?.heldInFlight ?? 0),
    };
  }

  /** Numbers for /api/stats, /metrics and $SYS. */
  async stats(): Promise<GatewayStats> {
    // A stats call is a billed request too ($SYS and the API make them).
    this.counters.add("rpc_in");
    this.counters.add("log_lines", takeLogLines());
    this.counters.flush();
    return {
      gateway: this.name,
      connections: [...this.clients.values()].filter((c) => !c.finished).length,
      sockets: this.ctx.getWebSockets().length,
      subscriptions: this.store.totalSubscriptions(),
      counters: this.counters.snapshot(),
    };
  }

  /** The client's subscriptions are registered elsewhere now: forget it here. */
  async forget(clientId: string, connId: string): Promise<void> {
    this.counters.add("rpc_in");
    await this.handover.forgetMoved(clientId, connId);
  }

  // ---- packets ---------------------------------------------------------------

  private async dispatch(conn: Connection, packet: Packet): Promise<void> {
    if (conn.finished) return;
    if (conn.att.phase === "awaiting-connect") {
      if (packet.type === "connect" && conn.auth === undefined) return handleConnect(this, conn, packet);
      // 4.12: the AUTH packets of an exchange begun by CONNECT.
      if (packet.type === "auth" && conn.auth?.pending !== undefined) return handleAuth(this, conn, packet);
      // MQTT-3.1.0-1: the first packet from the client must be CONNECT.
      return this.fail(conn, ReasonCode.ProtocolError, `${packet.type} before CONNECT (MQTT-3.1.0-1)`);
    }
    switch (packet.type) {
      case "connect":
        // MQTT-3.1.0-2: a second CONNECT is a protocol violation.
        return this.fail(conn, ReasonCode.ProtocolError, "second CONNECT (MQTT-3.1.0-2)");
      case "publish":
        return handlePublish(this, conn, packet);
      case "puback":
      case "pubrec":
      case "pubrel":
      case "pubcomp":
        return handleAck(this, conn, packet);
      case "subscribe":
        return handleSubscribe(this, conn, packet);
      case "unsubscribe":
        return handleUnsubscribe(this, conn, packet);
      case "pingreq":
        this.send(conn, { type: "pingresp" });
        return;
      case "disconnect":
        return this.clientDisconnect(conn, packet);
      case "auth":
        return handleAuth(this, conn, packet);
      default:
        return this.fail(conn, ReasonCode.ProtocolError, `${packet.type} is a server-to-client packet`);
    }
  }

  /** DISCONNECT from the client: 0x04 keeps the will, anything else drops it. */
  private async clientDisconnect(conn: Connection, packet: DisconnectPacket): Promise<void> {
    const att = conn.connected;
    if (att === undefined) return;
    const reasonCode = packet.reasonCode ?? 0;
    const expiry = packet.properties?.sessionExpiryInterval;
    if (expiry !== undefined) {
      // MQTT-3.14.2-2: a session that was to end with the connection cannot be extended.
      if (att.expiry === 0 && expiry > 0) {
        return this.fail(
          conn,
          ReasonCode.ProtocolError,
          "Session Expiry Interval set at DISCONNECT after 0 at CONNECT",
        );
      }
      att.expiry = Math.min(expiry, this.config.maxSessionExpiry);
      this.store.setExpiry(att.clientId, att.expiry);
    }
    // MQTT-3.14.4-3: a normal DISCONNECT discards the will without publishing it.
    if (reasonCode !== ReasonCode.DisconnectWithWillMessage) this.store.clearWill(att.clientId);
    this.closeSocket(conn, 1000, "client disconnected");
    await this.end(conn, reasonCode === 0 ? "normal" : "abnormal", "DISCONNECT");
  }

  private async decodeFailure(conn: Connection, error: DecodeError): Promise<void> {
    if (conn.att.phase === "awaiting-connect" && error.reasonCode === ReasonCode.UnsupportedProtocolVersion) {
      // MQTT-3.1.2-2: CONNACK 0x01 (3.1.1) and close; a 5.0 client understands 0x84 too.
      this.send(conn, { type: "connack", sessionPresent: false, reasonCode: 0x01 }, 4);
      log("info", "connect_refused", { gateway: this.name, reason: error.message });
      this.closeSocket(conn, 1000, "unsupported protocol");
      return this.end(conn, "abnormal", error.message);
    }
    return this.fail(conn, error.reasonCode, error.message);
  }

  /**
   * Ends a connection for a protocol violation: a 5.0 client gets DISCONNECT with
   * the reason code (after CONNACK only, 4.13.1), a 3.1.1 client a plain close.
   */
  async fail(conn: Connection, reasonCode: number, message: string): Promise<void> {
    if (conn.finished) return;
    const att = conn.connected;
    log("warn", "protocol_error", {
      gateway: this.name,
      clientId: att?.clientId,
      reason: reasonName(reasonCode),
      message,
    });
    if (conn.ready && conn.version === 5) this.send(conn, { type: "disconnect", reasonCode });
    this.closeSocket(conn, reasonCode === ReasonCode.KeepAliveTimeout ? 1000 : 1002, message.slice(0, 100));
    await this.end(conn, "abnormal", message);
  }

  /** Never lets a bug in one connection's handling take the object down. */
  private crash(conn: Connection, err: unknown): Promise<void> {
    log("error", "handler_error", {
      gateway: this.name,
      error: err instanceof Error ? err.stack : String(err),
    });
    return this.fail(conn, ReasonCode.UnspecifiedError, "internal error");
  }

  send(conn: Connection, packet: Packet, version = conn.version): void {
    this.frames.send(conn.ws, encode(packet, version));
  }

  private write(ws: WebSocket, bytes: Uint8Array): void {
    try {
      ws.send(bytes);
    } catch (err) {
      // Once per socket: a closed socket fails every send after it.
      if (this.connections.get(ws)?.firstTime("send_failed") ?? true)
        log("warn", "send_failed", { gateway: this.name, error: String(err) });
    }
  }

  /** Reason String and User Property only if the client did not ask to go without (MQTT-3.1.2-29). */
  ackProperties(conn: Connection, reasonString: string): { reasonString: string } | undefined {
    return conn.connected?.noProblemInfo || conn.version !== 5 ? undefined : { reasonString };
  }

  closeSocket(conn: Connection, code: number, reason: string): void {
    this.frames.flush(conn.ws);
    try {
      conn.ws.close(code, reason);
    } catch {
      // already closed
    }
  }

  // ---- connection bookkeeping ----------------------------------------------

  /** The Connection for a socket, rebuilt from its attachment after hibernation. */
  private connectionOf(ws: WebSocket): Connection {
    let conn = this.connections.get(ws);
    if (conn === undefined) {
      const att = (ws.deserializeAttachment() as Attachment | null) ?? {
        phase: "awaiting-connect",
        openedAt: Date.now(),
      };
      conn = this.newConnection(ws, att);
      if (att.phase === "connected") {
        conn.ready = true;
        const record = this.store.getClient(att.clientId);
        if (record?.connId === att.connId) this.clients.set(att.clientId, conn);
        else conn.detach();
      }
      this.connections.set(ws, conn);
    }
    return conn;
  }

  private newConnection(ws: WebSocket, att: Attachment): Connection {
    return new Connection(ws, att, this.config.maxPacketSize, (conn) => this.inbound.attach(conn));
  }

  /** Records activity for keep-alive; the attachment is rewritten only now and then. */
  private touch(conn: Connection): void {
    const now = Date.now();
    conn.lastSeen = now;
    const att = conn.connected;
    if (att !== undefined && now - att.lastSeen > LAST_SEEN_GRAIN) {
      att.lastSeen = now;
      conn.save();
    }
  }

  /** Makes sure the alarm fires no later than `at`. */
  async scheduleCheck(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) await this.setAlarm(at);
  }

  /** Sets the storage alarm: billed as a row written, so counted as one. */
  private async setAlarm(at: number): Promise<void> {
    this.counters.add("rows_written");
    await this.ctx.storage.setAlarm(at);
  }

  /**
   * After a restart (not a hibernation wake) the sockets are gone but storage
   * still lists their clients: end those sessions as abnormal closes, once.
   */
  private reconcile(): void {
    if (this.reconciled) return;
    this.reconciled = true;
    const live = new Set<string>();
    for (const ws of this.ctx.getWebSockets()) {
      const att = this.connectionOf(ws).connected;
      if (att !== undefined) live.add(att.connId);
    }
    for (const record of this.store.allClients()) {
      if (live.has(record.connId) || record.connId.startsWith("moved:")) continue;
      log("info", "orphaned_session", { gateway: this.name, clientId: record.clientId });
      this.ctx.waitUntil(this.handover.handOff(record.clientId, record.connId, "abnormal"));
    }
  }

  /** Ends a connection (handover.ts): the one way every connection stops. */
  end(conn: Connection, how: Ending, why: string): Promise<void> {
    return this.handover.end(conn, how, why);
  }

  // ---- routing -------------------------------------------------------------

  /** Hands a message to the shard of its topic; resolves, with the shard's reason code, once it is delivered. */
  publishMessage(message: Message): Promise<number | undefined> {
    return this.inbound.route(message);
  }

  /**
   * Registers a client's filters for this gateway at their shards; returns, per
   * shard, the first page of retained messages for `retainedFor`.
   */
  registerFilters(clientId: string, filters: string[], retainedFor: string[] = []): Promise<RetainedFrom[]> {
    return registerAtShards(
      (i) => this.shard(i),
      this.config,
      this.destination,
      clientId,
      filters,
      retainedFor,
    );
  }

  unregisterFilters(clientId: string, filters: string[]): Promise<void> {
    return unregisterAtShards((i) => this.shard(i), this.config, this.destination, clientId, filters);
  }

  /** Who a connected client is, for authorization; kept in storage, cached on the connection. */
  principal(conn: Connection): Principal {
    const att = conn.connected as NonNullable<Connection["connected"]>;
    return principalOf(att.clientId, this.identity(conn));
  }

  /** The identity a connected client authenticated as (stored with its client record). */
  identity(conn: Connection): Identity {
    const clientId = conn.connected?.clientId;
    // A record without one cannot be: every accepted CONNECT stores it. Were it
    // missing, the client is treated as no one in particular, never as a user.
    conn.identity ??= (clientId === undefined ? undefined : this.store.getClient(clientId)?.identity) ?? {
      via: "anonymous",
    };
    return conn.identity;
  }

  /**
   * The one way a subscription is added at this gateway (SUBSCRIBE, a restored
   * session): in storage, and in the local index unless shared.
   */
  addSubscription(clientId: string, filter: string, options: SubscriptionOptions): void {
    this.store.putSub(clientId, filter, options);
    if (!isShared(filter)) this.index.add(filter, clientId, options);
  }

  removeSubscription(clientId: string, filter: string): boolean {
    this.index.remove(filter, clientId);
    return this.store.deleteSub(clientId, filter);
  }
}
