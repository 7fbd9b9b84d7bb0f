/**
 * Cloudflare's limits that `wrangler dev` does not enforce (DESIGN.md invariant 6):
 * a call between objects carries at most 32 MiB (the objects refuse more where
 * it arrives, standing in for the platform), so batches are split in bytes.
 */
import type { MqttClient } from "mqtt";
import { afterEach, describe, expect, inject, it } from "vitest";
import { connect, Inbox, unique } from "../support/clients.ts";

const url = inject("brokerUrl");
const open: MqttClient[] = [];

afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.endAsync(true)));
});

async function client(): Promise<MqttClient> {
  const c = await connect(url, { protocolVersion: 5, clientId: unique("limits") });
  open.push(c);
  return c;
}

describe("calls between objects stay under 32 MiB", () => {
  it("40 clients each publishing a 1 MiB QoS 1 message at once all get PUBACK, and the subscriber every message", async () => {
    const topic = unique("big");
    const sub = await client();
    const inbox = new Inbox(sub);
    await sub.subscribeAsync(`${topic}/#`, { qos: 1 });
    const publishers = await Promise.all(Array.from({ length: 40 }, () => client()));
    // The largest payload a 1 MiB packet holds with this topic.
    const payload = Buffer.alloc(2 ** 20 - 256, 0x61);
    const acks = await Promise.all(
      publishers.map((p, i) => p.publishAsync(`${topic}/${i}`, payload, { qos: 1 })),
    );
    expect(acks).toHaveLength(40);
    const got = await inbox.waitFor(40, 60_000);
    expect(new Set(got.map((m) => m.topic)).size).toBe(40);
    expect(got.every((m) => m.payload.length === payload.length)).toBe(true);
  }, 120_000);
});
