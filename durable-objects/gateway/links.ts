/**
 * The gateway's calls to other objects, each counted where it is made: shards
 * (one stub each, kept), the Registry of a client id, its Session, and the
 * registrations of this gateway's clients' filters at the shards.
 */
import { KeyedBatcher } from "../../broker/batcher.ts";
import type { BrokerConfig } from "../../broker/config.ts";
import type { Counters } from "../../broker/counters.ts";
import { type Message, RPC_BATCH_BYTES, RPC_BATCH_MESSAGES } from "../../broker/message.ts";
import { type Destination, registryName } from "../../broker/routing.ts";
import type { BrokerStats, GatewayCounter } from "../../broker/stats.ts";
import type { Env } from "../../worker/env.ts";
import type { ClaimRequest, Ended, Published, RegistryClaim, Reply } from "../contracts.ts";
import { BatchedRegistrations, type RetainedFrom } from "../registration.ts";
import {
  brokerStats,
  callSession,
  meterSession,
  type RegistryStub,
  registryStubNamed,
  type SessionStub,
  type ShardStub,
  sessionStub,
  shardStub,
} from "../stubs.ts";

export interface LinksDeps {
  env: Env;
  config: BrokerConfig;
  counters: Pick<Counters<GatewayCounter>, "add">;
  /** This gateway as a destination at the shards. */
  destination(): Destination;
}

export class Links {
  private readonly shardStubs = new Map<number, ShardStub>();
  /** One stub per registry, kept as the shards' are: a claim on a new stub costs a channel. */
  private readonly registryStubs = new Map<string, RegistryStub>();
  /** Ended clean connections, per registry: a storm of disconnects is a few calls. */
  private readonly registryCloses: KeyedBatcher<string, Ended, undefined>;
  private readonly deps: LinksDeps;
  /** This gateway's clients' filters at the shards, plain ones batched per shard. */
  private readonly registrations: BatchedRegistrations;

  constructor(deps: LinksDeps) {
    this.deps = deps;
    this.registrations = new BatchedRegistrations((i) => this.shard(i), deps.config, deps.destination);
    this.registryCloses = new KeyedBatcher(
      async (registry, ended) => {
        deps.counters.add("registry_calls");
        const rows = await registryStubNamed(deps.env, registry).close(ended);
        if (rows > 0) deps.counters.add("registry_rows", rows);
        return undefined;
      },
      {
        maxItems: RPC_BATCH_MESSAGES,
        maxBytes: RPC_BATCH_BYTES,
        sizeOf: (r) => 64 + 2 * (r.clientId.length + r.connId.length),
      },
    );
  }

  /**
   * A shard's stub (each call is a billed request, counted at the shard). One per
   * shard, kept: calls on one stub arrive in order (invariant 3), and making a
   * stub costs an id's hash and a channel. One that failed is replaced
   * (`shardFailed`), as a stub may be broken after an exception.
   */
  shard(index: number): ShardStub {
    let stub = this.shardStubs.get(index);
    if (stub === undefined) {
      stub = shardStub(this.deps.env, index);
      this.shardStubs.set(index, stub);
    }
    return stub;
  }

  shardFailed(index: number): void {
    this.shardStubs.delete(index);
  }

  /**
   * Publishes messages at a shard from this gateway: what matches this
   * gateway's own clients comes back in the answer (`here`), not in a second
   * call. A shard whose call failed gets a new stub.
   */
  async publishAt(index: number, messages: Message[]): Promise<Published> {
    try {
      return await this.shard(index).publishFrom(this.deps.destination(), messages);
    } catch (err) {
      this.shardFailed(index);
      throw err;
    }
  }

  /**
   * Claims a client id for a new connection at its Registry (which goes on to the
   * client's Session where it has one): counted here, with what both did.
   */
  async claim(request: ClaimRequest): Promise<RegistryClaim> {
    const { counters, env } = this.deps;
    counters.add("registry_calls");
    const name = registryName(request.clientId);
    let stub = this.registryStubs.get(name);
    if (stub === undefined) {
      stub = registryStubNamed(env, name);
      this.registryStubs.set(name, stub);
    }
    let claim: RegistryClaim;
    try {
      claim = await stub.claim(request);
    } catch (err) {
      // A stub may be broken after an exception: the next claim makes a new one.
      this.registryStubs.delete(name);
      throw err;
    }
    if (claim.rowsWritten > 0) counters.add("registry_rows", claim.rowsWritten);
    if (claim.session !== undefined) meterSession(counters, claim.session);
    return claim;
  }

  /** A clean session's connection ended: its Registry lets the client id go (batched per registry). */
  closeAtRegistry(clientId: string, connId: string): Promise<void> {
    return this.registryCloses.add(registryName(clientId), { clientId, connId });
  }

  /** Calls a client's Session: counted here, with what it reports of its own work. */
  session<T>(clientId: string, call: (session: SessionStub) => Promise<Reply<T>>): Promise<T> {
    return callSession(sessionStub(this.deps.env, clientId), this.deps.counters, call);
  }

  /**
   * Registers a client's filters for this gateway at their shards; returns, per
   * shard, the first page of retained messages for `retainedFor`.
   */
  registerFilters(clientId: string, filters: string[], retainedFor: string[] = []): Promise<RetainedFrom[]> {
    return this.registrations.register(clientId, filters, retainedFor);
  }

  unregisterFilters(clientId: string, filters: string[]): Promise<void> {
    return this.registrations.unregister(clientId, filters);
  }

  /** The broker's statistics for $SYS: the StatsHub's, at most one interval old (one call). */
  stats(): Promise<BrokerStats> {
    return brokerStats(this.deps.env, this.deps.config.sysInterval * 1000);
  }
}
