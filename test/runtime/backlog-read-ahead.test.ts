/**
 * Inside workerd: a persistent session's backlog at its gateway is stored, and
 * read from storage a step at a time to refill the in-flight window (README,
 * Memory bounds): at most 64 messages and 1 MiB at once per connection, one
 * message at least. Read here from the gateway's memory after a refill.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { messageBytes } from "../../broker/message.ts";
import { READ_AHEAD_BYTES } from "../../durable-objects/gateway/outbound.ts";
import type { Gateway } from "../../durable-objects/gateway.ts";
import type { Env } from "../../worker/env.ts";
import { TestClient } from "../support/workerd-client.ts";

const bindings = env as unknown as Env;
const gateway = () => bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));

/** What the gateway holds read ahead for `clientId`: how many messages, and their weight. */
const readAhead = (clientId: string) =>
  runInDurableObject(gateway(), (instance: Gateway) => {
    const window = instance.sockets.clients.get(clientId)?.window;
    const entries = window?.readAhead ?? [];
    return {
      messages: entries.length,
      bytes: entries.reduce((sum, e) => sum + messageBytes(e.message), 0),
      queued: window?.queued ?? 0,
    };
  });

/**
 * A persistent subscriber that allows one message in flight gets `n` messages of
 * `size` bytes: the first is sent, the rest are stored. It acknowledges the first,
 * which makes the gateway read the backlog ahead to send the next.
 */
async function backlog(name: string, n: number, size: number) {
  const sub = await TestClient.connected(`${name}-sub`, 5, { sessionExpiryInterval: 300, receiveMaximum: 1 });
  await sub.subscribe(`${name}/#`);
  const pub = await TestClient.connected(`${name}-pub`, 4);
  for (let i = 1; i <= n; i++) {
    pub.send(
      {
        type: "publish",
        topic: `${name}/t`,
        payload: new Uint8Array(size).fill(0x61),
        qos: 1,
        dup: false,
        retain: false,
        packetId: i,
      },
      4,
    );
    await pub.next("puback");
  }
  const first = await sub.next("publish");
  expect((await readAhead(`${name}-sub`)).messages).toBe(0);
  sub.send({ type: "puback", packetId: first.packetId as number }, 5);
  const second = await sub.next("publish");
  // What the message sent weighs at least (its id adds to it).
  const weight = messageBytes({ id: "", topic: `${name}/t`, payload: second.payload, qos: 1, retain: false });
  return { sub, pub, weight };
}

describe("a backlog read ahead from the gateway's storage", () => {
  it("is at most 64 messages at once", async () => {
    const { sub, pub } = await backlog("ra-count", 200, 10);
    // 64 read, one of them sent: 63 wait in memory, the other 135 in storage only.
    expect(await readAhead("ra-count-sub")).toMatchObject({ messages: 63, queued: 198 });
    sub.ws.close();
    pub.ws.close();
  });

  it("is at most 1 MiB at once", async () => {
    const { sub, pub } = await backlog("ra-bytes", 60, 32 * 1024);
    expect(READ_AHEAD_BYTES).toBe(2 ** 20);
    const held = await readAhead("ra-bytes-sub");
    const each = held.bytes / held.messages;
    // As many as fit in 1 MiB were read (the one sent among them), and no more.
    expect(held.messages + 1).toBe(Math.floor(READ_AHEAD_BYTES / each));
    expect(held.bytes + each).toBeLessThanOrEqual(READ_AHEAD_BYTES);
    sub.ws.close();
    pub.ws.close();
  });

  it("is one message when one alone passes 1 MiB", async () => {
    // 32 bytes short of 1 MiB: the largest payload a 1 MiB packet carries here.
    const { sub, pub, weight } = await backlog("ra-one", 3, 2 ** 20 - 32);
    expect(weight).toBeGreaterThan(READ_AHEAD_BYTES);
    // The one read was sent: nothing more is held, the last waits in storage.
    expect(await readAhead("ra-one-sub")).toMatchObject({ messages: 0, queued: 1 });
    sub.ws.close();
    pub.ws.close();
  });
});
