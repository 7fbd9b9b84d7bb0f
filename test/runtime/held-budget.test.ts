/**
 * Inside workerd: a clean session's QoS 1/2 messages are held in memory, up to
 * the gateway's budget for held messages (docs/limits.md, Memory bounds: 16 MiB a
 * gateway, HELD_BUDGET_BYTES). Past it they go to storage, and still reach the
 * client in order (MQTT 4.6) once it acknowledges. The budget is lowered here on
 * the live gateway (HeldBudget.max) so that ten small messages reach it.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { QUEUE_START } from "../../broker/session-state.ts";
import type { Outbound } from "../../durable-objects/gateway/outbound.ts";
import { HELD_BUDGET_BYTES } from "../../durable-objects/gateway/outbound.ts";
import { heldWeight } from "../../durable-objects/gateway/outbound-window.ts";
import type { Gateway } from "../../durable-objects/gateway.ts";
import type { Env } from "../../worker/env.ts";
import { TestClient } from "../support/workerd-client.ts";

const bindings = env as unknown as Env;
const gateway = () => bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));
const outboundOf = (instance: Gateway) => (instance as unknown as { outbound: Outbound }).outbound;

/** Sets the gateway's held budget; the bytes it holds now, and how many outbound rows `clientId` has. */
const budgetAndRows = (clientId: string, max?: number) =>
  runInDurableObject(gateway(), (instance: Gateway) => {
    const budget = outboundOf(instance).heldBudget;
    if (max !== undefined) budget.max = max;
    return {
      used: budget.used,
      rows: instance.store.outboundPage(clientId, QUEUE_START).entries.length,
    };
  });

const TOPIC = "held-budget/t";
const SIZE = 1000;
const payloadOf = (n: number) => new Uint8Array(SIZE).fill(n);

describe("the gateway's budget for held QoS 1/2 messages", () => {
  it("sends a clean session's messages past it to storage, and delivers them all in order", async () => {
    expect(HELD_BUDGET_BYTES).toBe(16 * 2 ** 20);
    const weight = heldWeight({ id: "", topic: TOPIC, payload: payloadOf(0), qos: 1, retain: false });
    // Four messages' worth: two in flight (Receive Maximum 2), two waiting for room.
    expect(await budgetAndRows("hb-sub", 4 * weight)).toEqual({ used: 0, rows: 0 });
    try {
      const sub = await TestClient.connected("hb-sub", 5, { receiveMaximum: 2 });
      await sub.subscribe("held-budget/#");
      const pub = await TestClient.connected("hb-pub", 4);
      for (let n = 1; n <= 10; n++) {
        pub.send(
          {
            type: "publish",
            topic: TOPIC,
            payload: payloadOf(n),
            qos: 1,
            dup: false,
            retain: false,
            packetId: n,
          },
          4,
        );
        await pub.next("puback");
      }
      // 1 and 2 in flight and 3, 4 waiting, all held; 5 finds the budget spent: the
      // waiting 3 and 4 are written ahead of it (order), which frees their share; 6, 7
      // wait held, 8 is written with them; 9 and 10 wait held. So 3 to 8 are stored
      // (six rows) and the held ones fill the budget exactly. (Well within
      // SPILL_AFTER_MS, after which everything held would be written.)
      expect(await budgetAndRows("hb-sub")).toEqual({ used: 4 * weight, rows: 6 });

      const got: number[] = [];
      for (let i = 0; i < 10; i++) {
        const p = await sub.next("publish");
        got.push(p.payload[0] as number);
        sub.send({ type: "puback", packetId: p.packetId as number }, 5);
      }
      expect(got).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      sub.send({ type: "pingreq" }, 5);
      await sub.next("pingresp");
      expect(await budgetAndRows("hb-sub")).toEqual({ used: 0, rows: 0 });
      sub.ws.close();
      pub.ws.close();
    } finally {
      await budgetAndRows("hb-sub", HELD_BUDGET_BYTES);
    }
  });
});
