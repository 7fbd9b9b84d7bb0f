/**
 * The calls objects make on each other, declared once: each class implements its
 * interface, `Env` types its namespace with it (worker/env.ts), and a stub is
 * typed by it (stubs.ts), so the compiler checks every call against the class
 * that answers it. Only data crosses: the types here import nothing from the
 * objects, so no object's file is needed to call another.
 */

import type { UserRecord } from "../broker/auth/password-logins.ts";
import type { Message } from "../broker/message.ts";
import type { Destination, Layout } from "../broker/routing.ts";
import type { OutboundPage, QueuedMessage, SessionState } from "../broker/session-state.ts";
import type { BrokerStats, GatewayStats, ShardStats } from "../broker/stats.ts";
import type { Will } from "../mqtt/index.ts";

// ---- gateways -------------------------------------------------------------

export interface GatewayRpc extends Rpc.DurableObjectBranded {
  /** A shard's messages for the clients of this gateway (fan-out here). */
  deliver(messages: Message[]): Promise<void>;
  /** A Session passes on messages for its client, online here; false if it is not. */
  deliverTo(clientId: string, connId: string, entries: QueuedMessage[]): Promise<boolean>;
  /** Closes the client's connection here; the first page of its session's state. */
  takeover(clientId: string, connId: string): Promise<SessionState | null>;
  /** The page of a session being parked or taken over after `after`. */
  outboundPage(clientId: string, connId: string, after: number): Promise<OutboundPage | null>;
  /** A newer clean connection took the client id (Registry): this one ends, and its session. */
  discard(clientId: string, connId: string): Promise<void>;
  /** The client is registered elsewhere now: its rows here are deleted. */
  forget(clientId: string, connId: string): Promise<void>;
  /** Disconnects every client here (5.0: with `reasonCode`); how many there were. */
  disconnectAll(reasonCode?: number): Promise<number>;
  stats(): Promise<GatewayStats>;
  /** Disconnects one client (5.0: with `reasonCode`); true if it was here. */
  disconnect(clientId: string, reasonCode: number): Promise<boolean>;
  clientInfo(clientId: string): Promise<ClientInfo | null>;
  /** Clients connected here whose id starts with `prefix`, in id order after `after` (GET /api/clients). */
  clients(prefix: string, after: string | null, limit: number): Promise<ListedClients>;
}

/** A connected client in the HTTP API's list. */
export interface ListedClient {
  clientId: string;
  /** The principal that owns its session (`anonymous`, `user:alice`, `jwt:…`). */
  owner: string;
  persistent: boolean;
}

/** A page of a gateway's clients; `more`: others after the last also match. */
export interface ListedClients {
  clients: ListedClient[];
  more: boolean;
}

/** What the HTTP API shows of an online client. */
export interface ClientInfo {
  subscriptions: string[];
  inflight: number;
}

// ---- topic shards ---------------------------------------------------------

export interface ShardFilters {
  /** Plain filters: one more (or one less) subscription behind the destination. */
  filters: string[];
  /** Shared subscriptions of the client, as written: `$share/{group}/{filter}`. */
  shared: string[];
  clientId: string;
}

export interface SubscribeRequest extends ShardFilters {
  /** Plain filters whose retained messages are wanted back. */
  retainedFor: string[];
}

/**
 * Retained messages a page at a time: a shard answers at most a call's worth
 * (RPC_BATCH_BYTES, RPC_BATCH_MESSAGES) and says where to go on from.
 */
export interface RetainedPage {
  messages: Message[];
  /** Where the next page starts (ask retainedPage with it); null when that was all. */
  next: string | null;
}

/** A route: `count` subscriptions to `filter` behind a destination. */
export interface RouteRow {
  destination: Destination;
  filter: string;
  count: number;
}

/** A member of a shared subscription group (`filter` is the filter inside `$share/grp/`). */
export interface MemberRow {
  grp: string;
  filter: string;
  client_id: string;
  destination: Destination;
}

/** Rows handed from one shard to another in one call. */
export interface MovedRows {
  routes: RouteRow[];
  members: MemberRow[];
  retained: Message[];
}

/** A re-shard: its number in shard 0's history, and the layouts it goes between. */
export interface Plan {
  version: number;
  /** null: nothing came before (a new deployment), so there is nothing to move. */
  from: Layout | null;
  to: Layout;
}

/** What shard 0 knows of the deployment's beginning (Registry asks it). */
export interface Origin {
  /** Sessions may have been stored by a release before registries. */
  predatesRegistries: boolean;
  /** Epoch ms from which registries decide who holds a client id. */
  since: number;
}

/** The calls a shard answers for re-sharding, outside the gate. */
export interface ReshardingRpc {
  layoutPlan(to: Layout): Plan | Promise<Plan>;
  /** Shard 0: the deployment's beginning, for the registries (deployment.ts). */
  origin(): Origin | Promise<Origin>;
  handOver(plan: Plan): Promise<void>;
  accept(rows: MovedRows): void | Promise<void>;
}

/** What a shard answers a gateway's publish: a reason code per message, and the messages for that gateway. */
export interface Published {
  codes: number[];
  /** In the order the shard matched them, as a `deliver` call would carry them; at most a call's worth. */
  here: Message[];
}

export interface ShardRpc extends ReshardingRpc, Rpc.DurableObjectBranded {
  subscribe(destination: Destination, request: SubscribeRequest): Promise<RetainedPage>;
  unsubscribe(destination: Destination, request: ShardFilters): Promise<void>;
  /** One reason code per message: 0x00, or 0x97 when a retained quota refused it. */
  publish(messages: Message[]): Promise<number[]>;
  /**
   * `publish` from a gateway: what goes to that gateway itself comes back with
   * the reason codes (`here`) instead of in a `deliver` call back to it.
   */
  publishFrom(gateway: Destination, messages: Message[]): Promise<Published>;
  /** Messages a leaving member of a shared subscription did not acknowledge. */
  redistribute(messages: Message[]): Promise<void>;
  /** Retained messages matching `filters`, the page that starts at `after` (null: the first). */
  retainedPage(filters: string[], after: string | null): Promise<RetainedPage>;
  stats(): ShardStats | Promise<ShardStats>;
}

// ---- sessions -------------------------------------------------------------

/**
 * What a Session did that Cloudflare bills, beyond the call itself: rows written
 * and alarms run since its last answer. Sessions are one object per client id and
 * nobody polls them, so each answer carries this to the caller, which counts it.
 */
export interface SessionUsage {
  rowsWritten: number;
  alarms: number;
}

export interface Reply<T> {
  result: T;
  usage: SessionUsage;
}

export interface SessionInfo {
  clientId: string;
  /** The principal the session belongs to ("user:alice", "anonymous"). */
  owner: string | null;
  online: boolean;
  gateway: string | null;
  persistent: boolean;
  subscriptions: string[];
  /** Offline: messages queued; online: messages in flight at the gateway. */
  queued: number;
  expiresAt: number | null;
}

export interface ClaimRequest {
  clientId: string;
  /** The principal connecting (ownerOf): only the session's owner may claim it. */
  owner: string;
  gateway: string;
  connId: string;
  cleanStart: boolean;
  persistent: boolean;
  /** Seconds the session lives after the connection ends. */
  expiry: number;
  /**
   * The connection of this client whose session the connecting gateway still
   * holds (its socket closed by a restart, within RESUME_GRACE_MS): the Session
   * may answer "present, keep yours" instead of taking it over.
   */
  resume?: string;
}

export type ClaimResult =
  /** Another principal owns this client id's session: nothing was changed. */
  | { granted: false }
  | {
      granted: true;
      sessionPresent: boolean;
      state: SessionState;
      /** The new gateway must call switched() once it has registered at the shards. */
      switchNeeded: boolean;
      /**
       * The session stays where it is: with the connecting gateway, which held it
       * under `resume` (ClaimRequest). `state` is empty; nothing moved.
       */
      resumed?: true;
    };

export interface SessionRpc extends Rpc.DurableObjectBranded {
  claim(req: ClaimRequest): Promise<Reply<ClaimResult>>;
  queuedPage(connId: string, after: number): Promise<Reply<OutboundPage>>;
  switched(connId: string, after: number): Promise<Reply<OutboundPage>>;
  park(
    gateway: string,
    connId: string,
    state: SessionState,
    expiry: number,
    will?: Will,
  ): Promise<Reply<void>>;
  close(connId: string): Promise<Reply<void>>;
  info(): Promise<Reply<SessionInfo | null>>;
  drop(): Promise<Reply<boolean>>;
  enqueue(messages: Message[]): Promise<Reply<void>>;
  /**
   * Messages its gateway matched already. `heldBy`: the connection that is still
   * taking the queue (its gateway holds newer messages back behind it): they are
   * queued without being offered back to that gateway.
   */
  append(entries: QueuedMessage[], heldBy?: string): Promise<Reply<void>>;
}

// ---- registries -----------------------------------------------------------

/** Who answers for a connected client id: its Registry alone, or its Session. */
export type Registrar = "registry" | "session";

/**
 * A claim's answer, with what was billed beyond the call: rows the registry wrote,
 * and, when the claim went on to the client id's Session, what it did.
 */
export type RegistryClaim = (
  | { granted: false }
  | (Extract<ClaimResult, { granted: true }> & { registrar: Registrar })
) & { rowsWritten: number; session?: SessionUsage };

/** A connection that ended, to be let go if it still holds its client id. */
export interface Ended {
  clientId: string;
  connId: string;
}

export interface RegistryRpc extends Rpc.DurableObjectBranded {
  claim(req: ClaimRequest): Promise<RegistryClaim>;
  /** Lets go of the client ids of ended clean connections; rows written. */
  close(ended: Ended[]): number | Promise<number>;
  /** A Session forgot its client id: no Session to go on to for it. */
  forgotten(clientId: string): void | Promise<void>;
  info(clientId: string): Promise<SessionInfo | null>;
  drop(clientId: string): Promise<boolean>;
}

// ---- bridges --------------------------------------------------------------

export type BridgeState = "stopped" | "connecting" | "connected" | "waiting";

export interface BridgeStatus {
  name: string;
  state: BridgeState;
  remote: string;
  /** Messages received from the remote broker and published here, and sent there. */
  messagesIn: number;
  messagesOut: number;
  /** Messages for the remote broker dropped: BRIDGE_QUEUE_BYTES were waiting. */
  dropped: number;
  /** Messages from the remote broker dropped: a topic or size this broker refuses (the HTTP API's checks). */
  refused: number;
  /** Connections ended for what the remote broker sent: a packet past MAX_PACKET_SIZE, or malformed. */
  badInput: number;
  queued: number;
  connects: number;
  lastError: string | null;
}

export interface BridgeRpc extends Rpc.DurableObjectBranded {
  start(): Promise<BridgeStatus>;
  status(): BridgeStatus | Promise<BridgeStatus>;
  deliver(messages: Message[]): Promise<void>;
}

// ---- the user store -------------------------------------------------------

/** A user as the API shows one: never the hash. Times in ms since 1970. */
export type UserInfo = {
  name: string;
  created: number;
  updated: number;
};

export interface NewUser {
  name: string;
  hash: string;
}

export interface UserPage {
  users: UserInfo[];
  /** More users follow the last one in this bucket. */
  more: boolean;
}

export interface UserShardRpc extends Rpc.DurableObjectBranded {
  /** The hash and verifier of each name, in order (a login's lookup). */
  lookup(names: string[]): UserRecord[];
  remember(name: string, verifier: Uint8Array): void;
  /** Adds or replaces users; how many were new. */
  put(users: NewUser[], now: number): number;
  remove(name: string): boolean;
  get(name: string): UserInfo | null;
  page(after: string | null, limit: number): UserPage;
}

// ---- statistics -----------------------------------------------------------

export interface StatsHubRpc extends Rpc.DurableObjectBranded {
  /** The broker's statistics, collected at most `maxAgeMs` ago (one collection shared by all askers). */
  current(maxAgeMs: number): Promise<BrokerStats>;
}
