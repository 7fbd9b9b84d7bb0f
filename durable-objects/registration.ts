/**
 * Registering a client's filters at the shards, for a gateway (client online) or
 * a session (client offline). Plain filters count per destination; shared ones
 * (`$share/{group}/{filter}`) name the client, since one member of a group gets
 * each message. A call per shard carries all of a client's filters for it.
 */
import { KeyedBatcher } from "../broker/batcher.ts";

import { type Message, RPC_BATCH_BYTES, RPC_BATCH_MESSAGES } from "../broker/message.ts";

import { type Destination, type Layout, shardsForFilter } from "../broker/routing.ts";

import { parseSubscriptionFilter } from "../mqtt/index.ts";
import type { RetainedPage, ShardRpc, SubscribeRequest } from "./contracts.ts";

/** The bytes a filter adds to a call (UTF-16 at most, and a little for its place in the array). */
const filterBytes = (f: string) => 16 + 2 * f.length;

/**
 * Registrations of one destination's clients at the shards, batched per shard
 * (a storm of reconnects is a few calls a shard, not one a client): plain
 * filters without retained messages wanted, which count per destination and
 * need no client id, go out together with other clients' in one subscribe or
 * unsubscribe call while the last call to that shard is under way (KeyedBatcher:
 * one call in flight per shard, a call's worth at most). Shared subscriptions
 * (a member is a client) and filters whose retained messages are wanted (the
 * answer is the client's) go in a call of their own, as registerAtShards does.
 *
 * Counts make the order of additions and removals of different clients
 * irrelevant: every removal is of a registration that was completed before.
 */
export class BatchedRegistrations {
  private readonly shard: (index: number) => ShardRpc;
  private readonly config: Sharding;
  private readonly destination: () => Destination;
  private readonly adds: KeyedBatcher<number, string[], undefined>;
  private readonly removals: KeyedBatcher<number, string[], undefined>;

  constructor(shard: (index: number) => ShardRpc, config: Sharding, destination: () => Destination) {
    this.shard = shard;
    this.config = config;
    this.destination = destination;
    const limits = {
      maxItems: RPC_BATCH_MESSAGES,
      maxBytes: RPC_BATCH_BYTES,
      sizeOf: (filters: string[]) => filters.reduce((n, f) => n + filterBytes(f), 16),
    };
    this.adds = new KeyedBatcher(async (s, lists) => {
      await shard(s).subscribe(destination(), {
        filters: lists.flat(),
        shared: [],
        retainedFor: [],
        clientId: "",
      });
      return undefined;
    }, limits);
    this.removals = new KeyedBatcher(async (s, lists) => {
      await shard(s).unsubscribe(destination(), { filters: lists.flat(), shared: [], clientId: "" });
      return undefined;
    }, limits);
  }

  /** registerAtShards, with plain filters that want no retained messages batched per shard. */
  async register(clientId: string, filters: string[], retainedFor: string[] = []): Promise<RetainedFrom[]> {
    const byShard = [...plan(this.config, clientId, filters, retainedFor)];
    const pages = await Promise.all(
      byShard.map(([s, req]) => {
        if (req.shared.length > 0 || req.retainedFor.length > 0)
          return this.shard(s).subscribe(this.destination(), req);
        return this.adds.add(s, req.filters).then((): RetainedPage => ({ messages: [], next: null }));
      }),
    );
    return byShard.map(([s, req], i) => ({
      shard: s,
      filters: req.retainedFor,
      page: pages[i] as RetainedPage,
    }));
  }

  /** unregisterAtShards, with plain filters batched per shard. */
  async unregister(clientId: string, filters: string[]): Promise<void> {
    if (filters.length === 0) return;
    const byShard = plan(this.config, clientId, filters, []);
    await Promise.all(
      [...byShard].map(([s, { filters: plain, shared }]) => {
        const calls: Promise<unknown>[] = [];
        if (shared.length > 0)
          calls.push(this.shard(s).unsubscribe(this.destination(), { filters: [], shared, clientId }));
        if (plain.length > 0) calls.push(this.removals.add(s, plain));
        return Promise.all(calls);
      }),
    );
  }
}

/** The first page of retained messages a shard answered a subscribe with. */
export interface RetainedFrom {
  shard: number;
  filters: string[];
  page: RetainedPage;
}

/** Every page of retained messages from one shard, fetching the next only once the last is handled. */
export async function* retainedPages(
  shard: (index: number) => ShardRpc,
  from: RetainedFrom,
): AsyncGenerator<Message[]> {
  let page = from.page;
  for (;;) {
    yield page.messages;
    if (page.next === null) return;
    page = await shard(from.shard).retainedPage(from.filters, page.next);
  }
}

interface Sharding {
  layout: Layout;
}

/** The filter a subscription matches topics with: the part after `$share/{group}/`. */
export function matchingFilter(raw: string): string {
  const parsed = parseSubscriptionFilter(raw);
  return "filter" in parsed ? parsed.filter : raw;
}

export function isShared(raw: string): boolean {
  return raw.startsWith("$share/");
}

function plan(
  config: Sharding,
  clientId: string,
  filters: string[],
  retainedFor: string[],
): Map<number, SubscribeRequest> {
  const byShard = new Map<number, SubscribeRequest>();
  const at = (shard: number) => {
    let req = byShard.get(shard);
    if (req === undefined) {
      req = { filters: [], shared: [], retainedFor: [], clientId };
      byShard.set(shard, req);
    }
    return req;
  };
  const shardsOf = (raw: string) => shardsForFilter(matchingFilter(raw), config.layout);
  for (const f of filters) for (const s of shardsOf(f)) (isShared(f) ? at(s).shared : at(s).filters).push(f);
  // Retained messages are not sent for shared subscriptions (5.0 4.8.2).
  for (const f of retainedFor) if (!isShared(f)) for (const s of shardsOf(f)) at(s).retainedFor.push(f);
  return byShard;
}

/**
 * Registers filters for `destination`; returns, per shard, the first page of the
 * retained messages asked for (retainedPages reads the rest).
 */
export async function registerAtShards(
  shard: (index: number) => ShardRpc,
  config: Sharding,
  destination: Destination,
  clientId: string,
  filters: string[],
  retainedFor: string[] = [],
): Promise<RetainedFrom[]> {
  const byShard = [...plan(config, clientId, filters, retainedFor)];
  const pages = await Promise.all(byShard.map(([s, req]) => shard(s).subscribe(destination, req)));
  return byShard.map(([s, req], i) => ({
    shard: s,
    filters: req.retainedFor,
    page: pages[i] as RetainedPage,
  }));
}

export async function unregisterAtShards(
  shard: (index: number) => ShardRpc,
  config: Sharding,
  destination: Destination,
  clientId: string,
  filters: string[],
): Promise<void> {
  if (filters.length === 0) return;
  const byShard = plan(config, clientId, filters, []);
  await Promise.all(
    [...byShard].map(([s, { filters: plain, shared }]) =>
      shard(s).unsubscribe(destination, { filters: plain, shared, clientId }),
    ),
  );
}
