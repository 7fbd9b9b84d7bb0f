/** pageOf: a session's queue moves a call's worth at a time, in order, whatever its length. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MESSAGE_BATCH, type Message, messageBytes } from "../../broker/message.ts";
import { type OutboundMessage, pageOf } from "../../broker/session-state.ts";

function entry(i: number, payloadBytes: number): OutboundMessage {
  const message: Message = {
    id: `m${i}`,
    topic: "t",
    payload: new Uint8Array(payloadBytes),
    qos: 1,
    retain: false,
  };
  return { packetId: null, state: "queued", subscriptionIds: [], message };
}

describe("pageOf", () => {
  it("cuts a queue into pages within MESSAGE_BATCH (a larger message alone), in order, reading one row past a page at most", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3 * 2 ** 20 }), { minLength: 0, maxLength: 60 }),
        (sizes) => {
          // Rows as a store holds them: seq from 1, read lazily by the page.
          const rows = sizes.map((size, i) => ({ seq: i + 1, entry: entry(i, size) }));
          const pages: OutboundMessage[][] = [];
          let after = 0;
          let read = 0;
          for (;;) {
            const cursor = (function* () {
              for (const row of rows.filter((r) => r.seq > after).slice(0, MESSAGE_BATCH.maxItems + 1)) {
                read++;
                yield row;
              }
            })();
            const before = read;
            const page = pageOf(cursor, after, (r) => r);
            expect(read - before).toBeLessThanOrEqual(page.entries.length + 1);
            if (page.entries.length === 0) {
              expect(page.more).toBe(false);
              break;
            }
            pages.push(page.entries);
            const bytes = page.entries.reduce((n, e) => n + messageBytes(e.message), 0);
            if (page.entries.length > 1) expect(bytes).toBeLessThanOrEqual(MESSAGE_BATCH.maxBytes);
            expect(page.entries.length).toBeLessThanOrEqual(MESSAGE_BATCH.maxItems);
            expect(page.more).toBe(rows.some((r) => r.seq > page.through));
            after = page.through;
          }
          expect(pages.flat().map((e) => e.message.id)).toEqual(sizes.map((_, i) => `m${i}`));
        },
      ),
      { numRuns: 100 },
    );
  });

  it("gives 1,000 messages of 1 MiB in pages of 7 (8 MiB a call), so 143 calls move 1 GiB", () => {
    const rows = Array.from({ length: 1000 }, (_, i) => ({ seq: i + 1, entry: entry(i, 2 ** 20) }));
    let after = 0;
    let calls = 0;
    for (;;) {
      const page = pageOf(
        rows.filter((r) => r.seq > after).slice(0, MESSAGE_BATCH.maxItems + 1),
        after,
        (r) => r,
      );
      if (page.entries.length === 0) break;
      calls++;
      expect(page.entries.length).toBeLessThanOrEqual(7);
      after = page.through;
    }
    expect(calls).toBe(143);
  });
});
