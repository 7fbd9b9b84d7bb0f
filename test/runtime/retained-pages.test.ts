/**
 * Inside workerd: retained messages come back a page at a time, each page at most
 * a call's worth (RPC_BATCH_BYTES), however much a shard holds; a wildcard that
 * matches nothing reads topics only, a bounded number per call (invariant 6). The
 * HTTP API's /api/retained answers at most a call's worth, and says so.
 */
import { SELF } from "cloudflare:test";

import { env } from "cloudflare:workers";

import { describe, expect, it } from "vitest";

import { type Message, messageBytes, RPC_BATCH_BYTES } from "../../broker/message.ts";
import type { RetainedPage, ShardRpc } from "../../durable-objects/contracts.ts";
import { shardStub } from "../../durable-objects/stubs.ts";
import { SCAN_PER_CALL } from "../../durable-objects/topic-shard/retained.ts";
import type { Env } from "../../worker/env.ts";

const shard: ShardRpc = shardStub(env as unknown as Env, 0);
const MiB = 2 ** 20;

async function store(topics: string[], bytes: number, fill?: number): Promise<void> {
  // Four 1 MiB messages a call keeps each call well under its limit.
  for (let i = 0; i < topics.length; i += 4) {
    const batch: Message[] = topics.slice(i, i + 4).map((topic) => ({
      id: `r-${topic}`,
      topic,
      payload: new Uint8Array(bytes).fill(fill ?? topic.length),
      qos: 0,
      retain: true,
    }));
    await shard.publish(batch);
  }
}

/** Every page for `filters`, asking for the next only after the last. */
async function allPages(filters: string[]): Promise<RetainedPage[]> {
  const pages: RetainedPage[] = [];
  let after: string | null = null;
  do {
    const page: RetainedPage = await shard.retainedPage(filters, after);
    pages.push(page);
    after = page.next;
  } while (after !== null && pages.length < 1000);
  return pages;
}

const pageBytes = (p: RetainedPage) => p.messages.reduce((n, m) => n + messageBytes(m), 0);

describe("retained messages a page at a time", () => {
  it("100 MiB behind a wildcard: pages of at most 8 MiB, every message once, in topic order", async () => {
    const topics = Array.from({ length: 100 }, (_, i) => `pages/big/${String(i).padStart(3, "0")}`);
    await store(topics, MiB);
    const pages = await allPages(["pages/big/#"]);
    expect(pages.length).toBeGreaterThanOrEqual(13);
    for (const p of pages) expect(pageBytes(p)).toBeLessThanOrEqual(RPC_BATCH_BYTES + MiB + 1024);
    // A page stops once it reaches the budget: never more than one message past it.
    for (const p of pages)
      expect(pageBytes(p) - messageBytes(p.messages.at(-1) as Message)).toBeLessThan(RPC_BATCH_BYTES);
    expect(pages.flatMap((p) => p.messages.map((m) => m.topic))).toEqual(topics);

    // A filter that matches nothing among them answers nothing, and loads no payload.
    const none = await allPages(["+/none"]);
    expect(none.flatMap((p) => p.messages)).toEqual([]);
    expect(none.at(-1)?.next).toBeNull();
  });

  it("exact topics are paged too, and one also matched by a wildcard comes once", async () => {
    const topics = Array.from({ length: 20 }, (_, i) => `pages/exact/${String(i).padStart(2, "0")}`);
    await store(topics, MiB);
    const pages = await allPages([...topics, "pages/exact/+"]);
    for (const p of pages)
      expect(pageBytes(p) - messageBytes(p.messages.at(-1) as Message)).toBeLessThan(RPC_BATCH_BYTES);
    expect(pages.length).toBeGreaterThanOrEqual(3);
    expect(pages.flatMap((p) => p.messages.map((m) => m.topic))).toEqual(topics);
  });
});

describe("a wildcard that matches nothing", () => {
  it("scans at most SCAN_PER_CALL (20,000) topics a call: past them its page is empty and says where to go on", async () => {
    // 20,050 small retained messages, 500 a call, after every topic other tests here store.
    const topics = Array.from(
      { length: SCAN_PER_CALL + 50 },
      (_, i) => `zscan/${String(i).padStart(5, "0")}`,
    );
    for (let i = 0; i < topics.length; i += 500)
      await shard.publish(
        topics.slice(i, i + 500).map((topic) => ({
          id: `r-${topic}`,
          topic,
          payload: new Uint8Array(1),
          qos: 0 as const,
          retain: true,
        })),
      );
    const first = await shard.retainedPage(["+/none"], null);
    expect(first.messages).toEqual([]);
    // However many topics the shard held before these, the first call stops at the
    // 20,000th of all, one of these, and the second finishes.
    expect(first.next).toMatch(/^w:zscan\/\d{5}$/);
    const second = await shard.retainedPage(["+/none"], first.next);
    expect(second).toEqual({ messages: [], next: null });
  }, 60_000);
});

describe("GET /api/retained", () => {
  it("answers at most 8 MiB of messages, and says with x-nimbus-truncated that more matched", async () => {
    const topics = Array.from({ length: 9 }, (_, i) => `api-retained/${String(i).padStart(2, "0")}`);
    await store(topics, MiB, 0x61); // text: the answer carries it as a JSON string
    const get = (filter: string) =>
      SELF.fetch(`http://nimbus.test/api/retained?filter=${encodeURIComponent(filter)}`, {
        headers: { authorization: `Bearer ${(env as unknown as Env).API_TOKEN}` },
      });
    const all = await get("api-retained/#");
    expect(all.status).toBe(200);
    expect(all.headers.get("x-nimbus-truncated")).toBe("true");
    const body = (await all.json()) as Array<{ topic: string; payload: string }>;
    // Each weighs a little over 1 MiB in a call: seven fit in 8 MiB, the eighth would not.
    expect(body.map((m) => m.topic)).toEqual(topics.slice(0, 7));
    expect(body.every((m) => m.payload.length === MiB)).toBe(true);
    // A narrower filter gets all it matches, and no header.
    const one = await get(topics[8] as string);
    expect(one.headers.get("x-nimbus-truncated")).toBeNull();
    expect(((await one.json()) as Array<{ topic: string }>).map((m) => m.topic)).toEqual([topics[8]]);
  });
});
