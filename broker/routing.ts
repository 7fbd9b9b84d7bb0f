/**
 * Which TopicShard holds a topic or a filter, and how destinations are named.
 * A topic lives in the shard its first `levels` levels hash to. A filter with no
 * wildcard in those levels lives in that one shard; any other filter is registered
 * in every shard (DESIGN.md, "Topic sharding").
 *
 * The hash that picks a shard is a jump consistent hash (Lamping and Veach, 2014):
 * going from n to m shards moves only the topics that must move (about 1 - n/m of
 * them when growing), so re-sharding a live broker hands over as little as it can
 * (DESIGN.md, "Re-sharding"). Releases before it took the hash modulo the number
 * of shards; storage they wrote is moved once, by the same hand-over.
 */

/** How topics are spread over shards: what TOPIC_SHARDS and SHARD_LEVELS say, and the hash. */
export interface Layout {
  /** "jump" today; "modulo" only for storage written before re-sharding existed. */
  readonly hash: "jump" | "modulo";
  readonly shards: number;
  readonly levels: number;
}

/** The layout a deployment's settings ask for. */
export function layoutOf(config: { topicShards: number; shardLevels: number }): Layout {
  return { hash: "jump", shards: config.topicShards, levels: config.shardLevels };
}

/** Whether two layouts put every topic in the same shard. */
export function sameLayout(a: Layout, b: Layout): boolean {
  return a.shards === b.shards && a.levels === b.levels && (a.hash === b.hash || a.shards === 1);
}

/** FNV-1a, 32 bits: small, fast and stable across runtimes. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/**
 * Jump consistent hash of a 32-bit key into [0, buckets): with one bucket more, a
 * key either stays or moves to the new bucket, never between old ones. The
 * pseudo-random steps are a Weyl sequence through MurmurHash3's finalizer.
 */
export function jumpHash(key: number, buckets: number): number {
  let state = key >>> 0;
  let b = -1;
  let j = 0;
  while (j < buckets) {
    b = j;
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z = (z ^ (z >>> 16)) >>> 0;
    // (z + 1) / 2^32 is uniform in (0, 1]: the next bucket this key would jump to.
    j = Math.floor(((b + 1) * 4294967296) / (z + 1));
  }
  return b;
}

function prefix(topic: string, levels: number): string {
  let end = -1;
  for (let i = 0; i < levels; i++) {
    end = topic.indexOf("/", end + 1);
    if (end < 0) return topic;
  }
  return topic.slice(0, end);
}

function hashed(head: string, layout: Layout): number {
  const h = fnv1a(head);
  return layout.hash === "jump" ? jumpHash(h, layout.shards) : h % layout.shards;
}

export function shardOf(topic: string, layout: Layout): number {
  if (layout.shards <= 1) return 0;
  return hashed(prefix(topic, layout.levels), layout);
}

/** The shards a (non-shared) filter must be registered in. */
export function shardsForFilter(filter: string, layout: Layout): number[] {
  if (layout.shards <= 1) return [0];
  const head = prefix(filter, layout.levels);
  if (head.includes("+") || head.includes("#") || filter === "#") return allShards(layout.shards);
  // "a/#" also matches the topic "a", whose prefix is "a" too: the same shard.
  return [hashed(head, layout)];
}

export function allShards(shards: number): number[] {
  return Array.from({ length: shards }, (_, i) => i);
}

/** A destination at a shard: a gateway (online clients), a session (offline), or a bridge. */
export type Destination = `g:${string}` | `s:${string}` | `b:${string}`;

export const gatewayDestination = (name: string): Destination => `g:${name}`;
export const sessionDestination = (clientId: string): Destination => `s:${clientId}`;

export function shardName(index: number): string {
  return `shard-${index}`;
}

/** The index in a shard's name (`shard-3` → 3). */
export function shardIndexOf(name: string): number {
  const match = /^shard-(\d+)$/.exec(name);
  if (match === null) throw new Error(`not a shard's name: ${name}`);
  return Number(match[1]);
}

/**
 * Registry buckets: who holds each client id's connection is kept by the registry
 * its id hashes to (DESIGN.md, "Connecting"). Fixed, so that a client id's bucket
 * never changes: 64 objects take far more connects a second than a deployment's
 * gateways can bring (each object serves about 1,000 calls a second).
 */
export const REGISTRY_BUCKETS = 64;

export function registryName(clientId: string): string {
  return `registry-${fnv1a(clientId) % REGISTRY_BUCKETS}`;
}

export function gatewayName(index: number): string {
  return `gateway-${index}`;
}
