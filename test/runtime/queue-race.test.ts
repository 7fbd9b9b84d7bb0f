/**
 * Inside workerd: a message that a shard hands to a gateway while one of its
 * clients is taking its queue back from its Session goes to that Session, behind
 * the queue (Connection.backlog). If that call lands after the Session computed
 * the queue's last page, the message sits in the Session's queue: the gateway
 * must take the queue once more after those calls landed, or the client never
 * gets a message its publisher had a PUBACK for (until its next connect). The
 * race is forced here: the append is held until the last page has reached the
 * gateway. (Seen losing acknowledged message 50 in e2e reshard once.)
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Message } from "../../broker/message.ts";
import type { OutboundPage } from "../../broker/session-state.ts";
import type { Reply } from "../../durable-objects/contracts.ts";
import type { Gateway } from "../../durable-objects/gateway.ts";
import type { SessionStub } from "../../durable-objects/stubs.ts";
import type { Env } from "../../worker/env.ts";
import { connectPacket } from "../support/packets.ts";
import { TestClient } from "../support/workerd-client.ts";

const bindings = env as unknown as Env;
const gateway = () => bindings.GATEWAY.get(bindings.GATEWAY.idFromName("gateway-0"));
const text = (b: Uint8Array) => new TextDecoder().decode(b);

/** The part of a Gateway instance this test reaches into (private there). */
interface Inside {
  links: { session: <T>(id: string, call: (s: SessionStub) => Promise<Reply<T>>) => Promise<T> };
}

const isLast = (page: OutboundPage) => page.entries.length === 0 && !page.more;

/**
 * From now on, when the Session answers `clientId`'s gateway with the queue's last
 * page, the gateway is handed `late` as a shard would (deliver), and the Session
 * call that appends it is held until that page has been returned to the gateway
 * (a macrotask later, after everything the page's answer set off synchronously).
 * Resolves with what happened, in order, as it happens.
 */
async function raceOnLastPage(clientId: string, late: Message): Promise<string[]> {
  const seen: string[] = [];
  await runInDurableObject(gateway(), (instance: Gateway) => {
    const links = (instance as unknown as Inside).links;
    const session = links.session.bind(links);
    let fired = false;
    let release: () => void = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    links.session = (id, call) => {
      if (id !== clientId) return session(id, call);
      return session(id, (stub) =>
        call(
          new Proxy(stub, {
            get: (target, key) => {
              const value = Reflect.get(target, key);
              if (key === "append")
                return async (...args: unknown[]) => {
                  await held;
                  const reply = await Reflect.apply(value, target, args);
                  seen.push("appended");
                  return reply;
                };
              if (key !== "switched" && key !== "queuedPage") return value;
              return async (...args: unknown[]) => {
                const reply = (await Reflect.apply(value, target, args)) as Reply<OutboundPage>;
                if (isLast(reply.result)) {
                  if (!fired) {
                    seen.push("last page");
                    fired = true;
                    // The gateway's client is still taking its queue: this goes behind it, to the Session.
                    void instance.deliver([late]);
                    setTimeout(release, 0);
                  }
                }
                return reply;
              };
            },
          }),
        ),
      );
    };
  });
  return seen;
}

async function publishQos1(topic: string, payloads: string[]): Promise<void> {
  const pub = await TestClient.connected(`race-pub-${crypto.randomUUID()}`, 5);
  let packetId = 1;
  for (const payload of payloads) {
    pub.send(
      {
        type: "publish",
        topic,
        payload: new TextEncoder().encode(payload),
        qos: 1,
        dup: false,
        retain: false,
        packetId: packetId++,
      },
      5,
    );
    expect((await pub.next("puback")).reasonCode ?? 0).toBe(0);
  }
  pub.ws.close();
}

describe("a message for a client taking its queue back", () => {
  it("reaches the client when it lands at the Session after the queue's last page (MQTT-4.6.0-6: in order, after the queue)", async () => {
    const clientId = "race-taker";
    const topic = `race/${clientId}`;
    const first = await TestClient.connected(clientId, 5, { sessionExpiryInterval: 300 });
    await first.subscribe(topic);
    first.send({ type: "disconnect", reasonCode: 0 }, 5);
    first.ws.close();
    // Queued at its Session while it is away (the gateway parks the session first).
    await publishQos1(topic, ["q1", "q2", "q3"]);

    const late: Message = {
      id: `race-late-${crypto.randomUUID()}`,
      topic,
      payload: new TextEncoder().encode("late"),
      qos: 1,
      retain: false,
    };
    const seen = await raceOnLastPage(clientId, late);

    const client = await TestClient.open(5);
    client.send(
      connectPacket(clientId, 5, { cleanStart: false, properties: { sessionExpiryInterval: 300 } }),
      5,
    );
    const connack = await client.next("connack");
    expect(connack.reasonCode ?? 0).toBe(0);
    // MQTT-3.2.2-3 (5.0): the session is present.
    expect(connack.sessionPresent).toBe(true);
    const got: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = await client.next("publish");
      expect(p.topic).toBe(topic);
      got.push(text(p.payload));
      client.send({ type: "puback", packetId: p.packetId as number }, 5);
    }
    expect(got).toEqual(["q1", "q2", "q3", "late"]);
    // The race happened as arranged: the late message reached the Session after it
    // had answered with the queue's last page.
    expect(seen).toEqual(["last page", "appended"]);
    client.ws.close();
  }, 30_000);
});
