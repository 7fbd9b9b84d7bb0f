/**
 * Inside workerd: what a persistent session's QoS 1 delivery writes at its gateway
 * (docs/benchmarks.md, cost model). A message is stored before it is sent, so that a
 * publisher's PUBACK never covers a message that only memory held (DESIGN.md
 * invariants 1 and 4); its row is reused by a later message once the subscriber
 * acknowledged it, so a subscriber that is online and acknowledging costs one row
 * written per message delivered, and none for the acknowledgement.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { RETIRED_ROWS_KEPT_MS } from "../../durable-objects/gateway/outbound-rows.ts";
import type { Env } from "../../worker/env.ts";
import { until } from "../support/until.ts";
import { TestClient } from "../support/workerd-client.ts";

const bindings = env as unknown as Env;
const gateway = () => bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));

/** Rows the gateway wrote so far (each storage alarm set counts as one): its billed count. */
const rowsWritten = async () => (await gateway().stats()).counters.rows_written ?? 0;

/** The rows of the outbound table that belong to `clientId`. */
const storedRows = (clientId: string) =>
  runInDurableObject(gateway(), (_instance, state) =>
    state.storage.sql
      .exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbound WHERE client_id = ?", clientId)
      .one(),
  ).then((r) => r.n);

/**
 * One QoS 1 message from `pub` to `sub`, acknowledged by both: the subscriber's
 * PUBACK is known to be handled once the PINGRESP that follows it on the same
 * socket comes back.
 */
async function roundTrip(pub: TestClient, sub: TestClient, topic: string, n: number): Promise<void> {
  const payload = new TextEncoder().encode(`m${n}`);
  pub.send({ type: "publish", topic, payload, qos: 1, dup: false, retain: false, packetId: n }, 4);
  expect(await pub.next("puback")).toEqual({ type: "puback", packetId: n });
  const got = await sub.next("publish");
  expect(new TextDecoder().decode(got.payload)).toBe(`m${n}`);
  expect(got.qos).toBe(1);
  sub.send({ type: "puback", packetId: got.packetId as number }, 5);
  sub.send({ type: "pingreq" }, 5);
  await sub.next("pingresp");
}

describe("A persistent session's QoS 1 delivery", () => {
  it("writes one row per message delivered to a subscriber that acknowledges, none per PUBACK", async () => {
    const sub = await TestClient.connected("rows-sub", 5, { sessionExpiryInterval: 300 });
    await sub.subscribe("rows/#");
    const pub = await TestClient.connected("rows-pub", 4);
    // The first message finds no acknowledged row to reuse: it writes a new one.
    for (let n = 1; n <= 3; n++) await roundTrip(pub, sub, "rows/t", n);

    const before = await rowsWritten();
    const delivered = 40;
    for (let n = 4; n < 4 + delivered; n++) await roundTrip(pub, sub, "rows/t", n);
    const written = (await rowsWritten()) - before;
    expect(written / delivered).toBeLessThanOrEqual(1);
    expect(written).toBe(delivered);

    // Nothing unacknowledged is stored: the row kept for reuse goes once the gateway
    // has been quiet for RETIRED_ROWS_KEPT_MS.
    expect(await until(() => storedRows("rows-sub"), 0, RETIRED_ROWS_KEPT_MS + 5_000)).toBe(0);
    sub.ws.close();
    pub.ws.close();
  }, 30_000);
});
