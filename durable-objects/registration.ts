/**
 * Registering a client's filters at the shards, for a gateway (client online) or
 * a session (client offline). Plain filters count per destination; shared ones
 * (`$share/{group}/{filter}`) name the client, since one member of a group gets
 * each message. A call per shard carries all of a client's filters for it.
 */
import type { Message } from "../broker/message.ts";

import { type Destination, type Layout, shardsForFilter } from "../broker/routing.ts";

import { parseSubscriptionFilter } from "../mqtt/index.ts";
import type { RetainedPage, ShardRpc, SubscribeRequest } from "./contracts.ts";

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
