/**
 * Where a shard's row goes when the layout changes (DESIGN.md, "Re-sharding"). A
 * row (a route, a shared-group member, a retained message) is held by the shards
 * its topic or filter places it in: one shard for a topic or a plain filter, every
 * shard for a filter with a wildcard in its sharded levels. Each shard decides for
 * its own rows alone, and together they hand every row to each of its new holders
 * exactly once.
 */
import { type Layout, shardOf, shardsForFilter } from "./routing.ts";

/** What places a row: a retained message's topic, or a route's or member's filter. */
export type Place = { topic: string } | { filter: string };

export function holdersOf(place: Place, layout: Layout): number[] {
  return "topic" in place ? [shardOf(place.topic, layout)] : shardsForFilter(place.filter, layout);
}

export interface Move {
  /** The shard keeps its copy. */
  keep: boolean;
  /** New holders this shard sends a copy to. */
  sendTo: number[];
}

/**
 * The move of one row held by shard `self`. Of the shards that held it before, the
 * lowest sends it to each new holder that did not hold it; a row a shard holds
 * although the old layout did not place it there (a hand-over cut short) goes to
 * every new holder but itself, which is harmless since receiving a row twice
 * stores it once.
 */
export function moveOf(place: Place, self: number, from: Layout, to: Layout): Move {
  const before = holdersOf(place, from);
  const after = holdersOf(place, to);
  const keep = after.includes(self);
  if (!before.includes(self)) return { keep, sendTo: after.filter((s) => s !== self) };
  if (self !== Math.min(...before)) return { keep, sendTo: [] };
  return { keep, sendTo: after.filter((s) => !before.includes(s)) };
}
