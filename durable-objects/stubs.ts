/**
 * Typed stubs for calls between objects. The runtime's generated stub types turn
 * tuples into plain arrays; these interfaces state what each call really carries.
 */
import type { Message } from "../broker/message.ts";
import { type Destination, gatewayName, type Layout, registryName, shardName } from "../broker/routing.ts";
import type { OutboundPage, QueuedMessage, SessionState } from "../broker/session-state.ts";
import { aggregate, type BrokerStats, type GatewayStats, type ShardStats } from "../broker/stats.ts";
import type { Env } from "../worker/env.ts";
import type { Bridge } from "./bridge.ts";
import type { RetainedPage, ShardFilters, SubscribeRequest } from "./registration.ts";
import type { Registry } from "./registry.ts";
import type { Session } from "./session.ts";
import type { ReshardingRpc } from "./topic-shard/resharding.ts";

export interface GatewayRpc {
  deliver(messages: Message[]): Promise<void>;
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
  clientInfo(clientId: string): Promise<{ subscriptions: string[]; inflight: number } | null>;
}

export interface ShardRpc extends ReshardingRpc {
  subscribe(destination: Destination, request: SubscribeRequest): Promise<RetainedPage>;
  unsubscribe(destination: Destination, request: ShardFilters): Promise<void>;
  /** One reason code per message: 0x00, or 0x97 when a retained quota refused it. */
  publish(messages: Message[]): Promise<number[]>;
  /** Messages a leaving member of a shared subscription did not acknowledge. */
  redistribute(messages: Message[]): Promise<void>;
  /** Retained messages matching `filters`, the page that starts at `after` (null: the first). */
  retainedPage(filters: string[], after: string | null): Promise<RetainedPage>;
  stats(): Promise<ShardStats>;
}

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

/** The calls a Session answers, with its own signatures (so they cannot drift apart). */
export type SessionRpc = Pick<
  Session,
  "claim" | "switched" | "queuedPage" | "park" | "close" | "enqueue" | "append" | "info" | "drop"
>;

/** Who counts a call into a Session and what the Session reports of its own work. */
export interface SessionMeter {
  add(name: "session_calls" | "session_rows" | "session_alarms", n?: number): void;
}

/** Calls a Session, counting the call and what the Session reports; its result. */
export async function callSession<T>(
  session: SessionRpc,
  meter: SessionMeter,
  call: (session: SessionRpc) => Promise<Reply<T>>,
): Promise<T> {
  const { result, usage } = await call(session);
  meterSession(meter, usage);
  return result;
}

/** Counts one call to a Session and what it reports of its own work. */
export function meterSession(meter: SessionMeter, usage: SessionUsage): void {
  meter.add("session_calls");
  if (usage.rowsWritten > 0) meter.add("session_rows", usage.rowsWritten);
  if (usage.alarms > 0) meter.add("session_alarms", usage.alarms);
}

type Namespaces = Pick<Env, "GATEWAY" | "TOPIC_SHARD" | "SESSION">;

/** Statistics of every gateway and shard, summed (for /api/stats, /metrics, $SYS). */
export async function collectStats(
  env: Namespaces,
  config: { gateways: number; layout: Layout },
): Promise<BrokerStats> {
  const gateways = await Promise.all(
    Array.from({ length: config.gateways }, (_, i) => gatewayStub(env, gatewayName(i)).stats()),
  );
  const shards = await Promise.all(
    Array.from({ length: config.layout.shards }, (_, i) => shardStub(env, i).stats()),
  );
  return aggregate(gateways, shards);
}

export function gatewayStub(env: Namespaces, name: string): GatewayRpc {
  return env.GATEWAY.get(env.GATEWAY.idFromName(name)) as unknown as GatewayRpc;
}

export function shardStub(env: Namespaces, index: number): ShardRpc {
  return env.TOPIC_SHARD.get(env.TOPIC_SHARD.idFromName(shardName(index))) as unknown as ShardRpc;
}

/** The calls a Bridge answers, with its own signatures. */
export type BridgeRpc = Pick<Bridge, "start" | "status" | "deliver">;

export function bridgeStub(env: Pick<Env, "BRIDGE">, name: string): BridgeRpc {
  return env.BRIDGE.get(env.BRIDGE.idFromName(name)) as unknown as BridgeRpc;
}

/** The calls a Registry answers, with its own signatures. */
export type RegistryRpc = Pick<Registry, "claim" | "close" | "forgotten" | "info" | "drop">;

export function registryStub(env: Pick<Env, "REGISTRY">, clientId: string): RegistryRpc {
  return registryStubNamed(env, registryName(clientId));
}

export function registryStubNamed(env: Pick<Env, "REGISTRY">, name: string): RegistryRpc {
  return env.REGISTRY.get(env.REGISTRY.idFromName(name)) as unknown as RegistryRpc;
}

export function sessionStub(env: Namespaces, clientId: string): SessionRpc {
  return env.SESSION.get(env.SESSION.idFromName(clientId)) as unknown as SessionRpc;
}
