/**
 * Which TopicShard holds a topic or a filter, and how destinations are named.
 * A topic lives in the shard its first `shardLevels` levels hash to. A filter with
 * no wildcard in those levels lives in that one shard; any other filter is
 * registered in every shard (DESIGN.md, "Topic sharding").
 */

/** FNV-1a, 32 bits: small, fast and stable across runtimes. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function prefix(topic: string, levels: number): string {
  let end = -1;
  for (let i = 0; i < levels; i++) {
    end = topic.indexOf("/", end + 1);
    if (end < 0) return topic;
  }
  return topic.slice(0, end);
}

export function shardOf(topic: string, shards: number, levels: number): number {
  if (shards <= 1) return 0;
  return fnv1a(prefix(topic, levels)) % shards;
}

/** The shards a (non-shared) filter must be registered in. */
export function shardsForFilter(filter: string, shards: number, levels: number): number[] {
  if (shards <= 1) return [0];
  const head = prefix(filter, levels);
  if (head.includes("+") || head.includes("#") || filter === "#") return allShards(shards);
  // "a/#" also matches the topic "a", whose prefix is "a" too: the same shard.
  return [shardOf(head, shards, levels)];
}

export function allShards(shards: number): number[] {
  return Array.from({ length: shards }, (_, i) => i);
}

/** A destination at a shard: a gateway (online clients) or a session (offline). */
export type Destination = `g:${string}` | `s:${string}`;

export const gatewayDestination = (name: string): Destination => `g:${name}`;
export const sessionDestination = (clientId: string): Destination => `s:${clientId}`;

export function shardName(index: number): string {
  return `shard-${index}`;
}

export function gatewayName(index: number): string {
  return `gateway-${index}`;
}
