/**
 * Stubs for calls between objects, typed by the contracts their classes implement
 * (contracts.ts): the compiler checks every call against the class that answers.
 */
import { type GatewayPlacement, gatewayNames } from "../broker/gateways.ts";
import { type Layout, registryName, shardName } from "../broker/routing.ts";

import { aggregate, type BrokerStats } from "../broker/stats.ts";

import type { Env } from "../worker/env.ts";

import type {
  BridgeRpc,
  GatewayRpc,
  RegistryRpc,
  Reply,
  SessionRpc,
  SessionUsage,
  ShardRpc,
  StatsHubRpc,
} from "./contracts.ts";

export type GatewayStub = DurableObjectStub<GatewayRpc>;
export type ShardStub = DurableObjectStub<ShardRpc>;
export type SessionStub = DurableObjectStub<SessionRpc>;
export type RegistryStub = DurableObjectStub<RegistryRpc>;
export type BridgeStub = DurableObjectStub<BridgeRpc>;

/** Who counts a call into a Session and what the Session reports of its own work. */
export interface SessionMeter {
  add(name: "session_calls" | "session_rows" | "session_alarms", n?: number): void;
}

/** Calls a Session, counting the call and what the Session reports; its result. */
export async function callSession<T>(
  session: SessionStub,
  meter: SessionMeter,
  call: (session: SessionStub) => Promise<Reply<T>>,
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

/**
 * Statistics of every gateway and shard, summed: G + S calls. Only the StatsHub
 * collects (stats-hub.ts); everyone else asks it (`brokerStats`).
 */
export async function collectStats(
  env: Namespaces,
  config: { gateways: number; placement: GatewayPlacement; layout: Layout },
): Promise<BrokerStats> {
  const gateways = await Promise.all(gatewayNames(config).map((name) => gatewayStub(env, name).stats()));
  const shards = await Promise.all(
    Array.from({ length: config.layout.shards }, (_, i) => shardStub(env, i).stats()),
  );
  return aggregate(gateways, shards);
}

export function gatewayStub(env: Pick<Env, "GATEWAY">, name: string): GatewayStub {
  return env.GATEWAY.get(env.GATEWAY.idFromName(name));
}

export function shardStub(env: Pick<Env, "TOPIC_SHARD">, index: number): ShardStub {
  return env.TOPIC_SHARD.get(env.TOPIC_SHARD.idFromName(shardName(index)));
}

export function bridgeStub(env: Pick<Env, "BRIDGE">, name: string): BridgeStub {
  return env.BRIDGE.get(env.BRIDGE.idFromName(name));
}

export function registryStub(env: Pick<Env, "REGISTRY">, clientId: string): RegistryStub {
  return registryStubNamed(env, registryName(clientId));
}

export function registryStubNamed(env: Pick<Env, "REGISTRY">, name: string): RegistryStub {
  return env.REGISTRY.get(env.REGISTRY.idFromName(name));
}

export function sessionStub(env: Pick<Env, "SESSION">, clientId: string): SessionStub {
  return env.SESSION.get(env.SESSION.idFromName(clientId));
}

/** The broker's statistics from the StatsHub, at most `maxAgeMs` old: one call. */
export function brokerStats(env: Pick<Env, "STATS">, maxAgeMs: number): Promise<BrokerStats> {
  const hub: DurableObjectStub<StatsHubRpc> = env.STATS.get(env.STATS.idFromName(STATS_HUB_NAME));
  return hub.current(maxAgeMs);
}

/** The one StatsHub of a deployment. */
export const STATS_HUB_NAME = "stats";
