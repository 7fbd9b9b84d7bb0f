/**
 * Typed stubs for calls between objects. The runtime's generated stub types turn
 * tuples into plain arrays; these interfaces state what each call really carries.
 */
import type { Message } from "../broker/message.ts";
import { type Destination, shardName } from "../broker/routing.ts";
import type { SessionState } from "../broker/session-state.ts";
import type { Will } from "../mqtt/index.ts";
import type { Env } from "../worker/env.ts";
import type { ShardFilters, SubscribeRequest } from "./registration.ts";
import type { ClaimRequest, ClaimResult } from "./session.ts";

export interface GatewayRpc {
  deliver(messages: Message[]): Promise<void>;
  deliverTo(clientId: string, connId: string, messages: Message[]): Promise<boolean>;
  takeover(clientId: string, connId: string): Promise<SessionState | null>;
  release(clientId: string, connId: string): Promise<void>;
  drain(reasonCode?: number): Promise<number>;
}

export interface ShardRpc {
  subscribe(destination: Destination, request: SubscribeRequest): Promise<Message[]>;
  unsubscribe(destination: Destination, request: ShardFilters): Promise<void>;
  /** One reason code per message: 0x00, or 0x97 when a retained quota refused it. */
  publish(messages: Message[]): Promise<number[]>;
  /** Messages a leaving member of a shared subscription did not acknowledge. */
  redistribute(messages: Message[]): Promise<void>;
}

export interface SessionRpc {
  claim(req: ClaimRequest): Promise<ClaimResult>;
  switched(connId: string): Promise<Message[]>;
  park(gateway: string, connId: string, state: SessionState, expiry: number, will?: Will): Promise<void>;
  release(connId: string): Promise<void>;
  enqueue(messages: Message[]): Promise<void>;
}

type Namespaces = Pick<Env, "GATEWAY" | "TOPIC_SHARD" | "SESSION">;

export function gatewayStub(env: Namespaces, name: string): GatewayRpc {
  return env.GATEWAY.get(env.GATEWAY.idFromName(name)) as unknown as GatewayRpc;
}

export function shardStub(env: Namespaces, index: number): ShardRpc {
  return env.TOPIC_SHARD.get(env.TOPIC_SHARD.idFromName(shardName(index))) as unknown as ShardRpc;
}

export function sessionStub(env: Namespaces, clientId: string): SessionRpc {
  return env.SESSION.get(env.SESSION.idFromName(clientId)) as unknown as SessionRpc;
}
