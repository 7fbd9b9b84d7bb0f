/** One gateway's page of its connected clients (GET /api/clients), and the listing's cursor. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  CLIENTS_PER_PAGE,
  clientPage,
  type OnlineClient,
} from "../../durable-objects/gateway/client-list.ts";
import { readPageCursor, writePageCursor } from "../../worker/page-cursor.ts";

const online = (ids: string[]): OnlineClient[] =>
  ids.map((clientId) => ({ clientId, persistent: clientId.endsWith("p"), owner: () => `user:${clientId}` }));

describe("a gateway's page of clients", () => {
  it("lists the prefix's clients in id order, a page at a time, each once, with more while more match", () => {
    const clients = online(["b/2", "a/1", "b/1p", "b/3", "c", "b/0"]);
    const first = clientPage(clients, "b/", null, 2);
    expect(first).toEqual({
      clients: [
        { clientId: "b/0", owner: "user:b/0", persistent: false },
        { clientId: "b/1p", owner: "user:b/1p", persistent: true },
      ],
      more: true,
    });
    const second = clientPage(clients, "b/", "b/1p", 2);
    expect(second.clients.map((c) => c.clientId)).toEqual(["b/2", "b/3"]);
    expect(second.more).toBe(false);
    expect(clientPage(clients, "b/", "b/3", 2)).toEqual({ clients: [], more: false });
  });

  it("never returns more than CLIENTS_PER_PAGE, whatever limit it is asked for", () => {
    const many = online(Array.from({ length: 250 }, (_, i) => `d${String(i).padStart(3, "0")}`));
    expect(clientPage(many, "", null, 1e9).clients).toHaveLength(CLIENTS_PER_PAGE);
    expect(clientPage(many, "", null, 0).clients).toHaveLength(1);
  });

  it("asks who a client is only for the clients on the page", () => {
    let asked = 0;
    const clients = Array.from({ length: 500 }, (_, i) => ({
      clientId: `e${i}`,
      persistent: false,
      owner: () => {
        asked++;
        return "anonymous";
      },
    }));
    clientPage(clients, "", null, 10);
    expect(asked).toBe(10);
  });

  it("pages through any set of ids and prefix: every match once, in order (property)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ maxLength: 6 }), { maxLength: 60 }),
        fc.string({ maxLength: 2 }),
        fc.integer({ min: 1, max: 7 }),
        (ids, prefix, limit) => {
          const clients = online(ids);
          const got: string[] = [];
          let after: string | null = null;
          for (let i = 0; i < 100; i++) {
            const page = clientPage(clients, prefix, after, limit);
            got.push(...page.clients.map((c) => c.clientId));
            if (!page.more) break;
            after = page.clients.at(-1)?.clientId ?? null;
          }
          const want = ids.filter((id) => id.startsWith(prefix)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
          expect(got).toEqual(want);
        },
      ),
    );
  });
});

describe("a listing's cursor", () => {
  it("reads back what was written", () => {
    const c = writePageCursor({ index: 3, after: "a/b%c?d#e é" });
    expect(readPageCursor(c, 4, () => true)).toEqual({ index: 3, after: "a/b%c?d#e é" });
    expect(readPageCursor(writePageCursor({ index: 0, after: null }), 1, () => false)).toEqual({
      index: 0,
      after: null,
    });
  });

  it("refuses what it did not write: another object count, a key its listing refuses, not JSON, not base64url", () => {
    const b64 = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
    expect(readPageCursor(writePageCursor({ index: 4, after: null }), 4, () => true)).toBeUndefined();
    expect(readPageCursor(writePageCursor({ index: 0, after: "x" }), 4, () => false)).toBeUndefined();
    for (const text of [
      "%%%",
      Buffer.from("not json").toString("base64url"),
      b64([1]),
      b64([1.5, null]),
      b64([-1, null]),
      b64(["1", null]),
      b64([0, 7]),
      b64({ index: 0, after: null }),
      Buffer.from([0xff, 0xfe]).toString("base64url"),
    ])
      expect(readPageCursor(text, 4, () => true)).toBeUndefined();
  });
});
