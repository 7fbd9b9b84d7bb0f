/**
 * Upgrades keep data (DESIGN.md invariant 8): storage written by an earlier
 * release's code (test/fixtures/storage/<release>/, made with `npm run
 * fixture:storage` from that release) opens with this code, and every session,
 * queued message, retained message and subscription is there.
 */
import { cpSync, mkdtempSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { startBroker } from "../support/broker.ts";
import { connect, Inbox } from "../support/clients.ts";
import { QUEUED, RETAINED, SESSION_5, SESSION_311 } from "../support/storage-fixture.ts";

const FIXTURES = resolve(import.meta.dirname, "../fixtures/storage");
const releases = readdirSync(FIXTURES);

describe.each(releases)("storage written by release %s", (release) => {
  it("opens with this code: sessions resume with their queues and subscriptions, retained messages are there", async () => {
    // A copy: the broker writes to it, and the fixture must stay as that release left it.
    const dir = mkdtempSync(join(tmpdir(), "nimbus-upgrade-"));
    cpSync(join(FIXTURES, release), dir, { recursive: true });
    const broker = await startBroker({
      persistTo: dir,
      vars: { ALLOW_ANONYMOUS: "true", API_TOKEN: "upgrade" },
    });
    const clientInfo = (id: string) =>
      fetch(`${broker.httpUrl}/api/clients/${id}`, { headers: { authorization: "Bearer upgrade" } });
    try {
      // The 5.0 session: present, its queue in order, both subscriptions in force.
      const v5 = await connect(broker.url, {
        protocolVersion: 5,
        clientId: SESSION_5.clientId,
        clean: false,
        properties: { sessionExpiryInterval: 0xffffffff },
      });
      const inbox5 = new Inbox(v5);
      const queued5 = await inbox5.waitFor(QUEUED.length, 10_000);
      expect(queued5.map((m) => m.payload)).toEqual(QUEUED);
      const pub = await connect(broker.url, { protocolVersion: 5, clientId: "upgrade-publisher" });
      await pub.publishAsync("fixture/live/now", "live", { qos: 1 });
      await pub.publishAsync("fixture/queued/after", "after", { qos: 1 });
      const more5 = await inbox5.waitFor(QUEUED.length + 2, 10_000);
      expect(more5.slice(QUEUED.length).map((m) => m.payload)).toEqual(["live", "after"]);

      // The 3.1.1 session is there with its queue (and the message just published)...
      const stored = await (await clientInfo(SESSION_311.clientId)).json();
      expect(stored).toMatchObject({ online: false, persistent: true, queued: QUEUED.length + 1 });
      // ...and a clean connection with its client id discards it (MQTT-3.1.2-6), although the
      // client id's registry, newer than that storage, never saw it: ids it has not seen go to
      // their Session while sessions of the older release may live.
      const clean = await connect(broker.url, {
        protocolVersion: 4,
        clientId: SESSION_311.clientId,
        clean: true,
      });
      await clean.endAsync();
      const v311 = await connect(broker.url, {
        protocolVersion: 4,
        clientId: SESSION_311.clientId,
        clean: false,
      });
      expect(v311.connected).toBe(true);
      const after = await (await clientInfo(SESSION_311.clientId)).json();
      expect(after).toMatchObject({ online: true, subscriptions: [] });

      // Retained messages, with their properties.
      const reader = await connect(broker.url, { protocolVersion: 5, clientId: "upgrade-reader" });
      const retained = new Inbox(reader);
      await reader.subscribeAsync("fixture/retained/#", { qos: 1 });
      const got = await retained.waitFor(RETAINED.length, 10_000);
      const byTopic = new Map(got.map((m) => [m.topic, m]));
      for (const r of RETAINED) {
        const m = byTopic.get(r.topic);
        expect(m?.payload).toBe(r.payload);
        expect(m?.packet.retain).toBe(true);
        if (r.userProperties !== undefined)
          expect(m?.packet.properties?.userProperties).toEqual(r.userProperties);
      }
      await Promise.all([v5, v311, pub, reader].map((c) => c.endAsync()));
    } finally {
      await broker.stop();
    }
  }, 90_000);
});
