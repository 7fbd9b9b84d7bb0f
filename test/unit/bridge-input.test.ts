/**
 * What a bridge reads from its remote broker (broker/bridge-input.ts): decoded
 * within MAX_PACKET_SIZE, and each PUBLISH checked as the HTTP API checks a
 * message, after its topic is mapped to the local side.
 */
import { describe, expect, it } from "vitest";
import { BridgeInput } from "../../broker/bridge-input.ts";
import { parseBridges } from "../../broker/bridges.ts";
import { readConfig } from "../../broker/config.ts";
import { encode, type PublishPacket } from "../../mqtt/index.ts";

const config = readConfig({ MAX_PACKET_SIZE: String(1024 * 1024) });
const [bridge] = parseBridges(
  JSON.stringify([
    {
      name: "b",
      host: "h",
      topics: [
        { pattern: "sensors/#", direction: "in", localPrefix: "plant/" },
        { pattern: "#", direction: "in", remotePrefix: "up/" },
        { pattern: "cmd/#", direction: "out" },
      ],
    },
  ]),
).bridges;
if (bridge === undefined) throw new Error("no bridge");

const publish = (topic: string, payload = new Uint8Array([1])): PublishPacket => ({
  type: "publish",
  topic,
  payload,
  qos: 1,
  packetId: 1,
  dup: false,
  retain: false,
});

describe("a remote PUBLISH is checked after its topic is mapped", () => {
  const input = new BridgeInput(config, bridge);

  it("maps the remote prefix to the local one", () => {
    expect(input.inbound(publish("sensors/t1"))).toMatchObject({ ok: true, topic: "plant/sensors/t1" });
    expect(input.inbound(publish("up/a/b"))).toMatchObject({ ok: true, topic: "a/b" });
    expect(input.inbound(publish("elsewhere"))).toEqual({ ok: false, problem: null });
    // An out line takes nothing in.
    expect(input.inbound(publish("cmd/x"))).toEqual({ ok: false, problem: null });
  });

  it.each([
    ["up/$SYS/broker/uptime", "$"],
    ["up/$share/g/x", "$"],
    ["up/", "empty"],
    ["up/a/#", "wildcard"],
    ["up/a/+/b", "wildcard"],
    ["up/a\u0001b", "control characters"],
    ["sensors/\u0085", "control characters"],
    [`up/${"x/".repeat(40)}`, "levels"],
    [`up/${"x".repeat(2000)}`, "longer than"],
  ])("refuses %j (%s)", (topic, why) => {
    const result = input.inbound(publish(topic));
    expect(result.ok).toBe(false);
    expect(result.ok === false && result.problem).toMatch(new RegExp(why.replace(/[$+]/g, "\\$&"), "i"));
  });

  it("refuses a payload whose PUBLISH here would pass MAX_PACKET_SIZE, and takes one just within it", () => {
    const fits = (n: number) => input.inbound(publish("sensors/t", new Uint8Array(n))).ok;
    // The PUBLISH of plant/sensors/t: header, topic, packet id, properties length; then the payload.
    const overhead = encode(publish("plant/sensors/t", new Uint8Array(0)), 5).length + 3;
    expect(fits(1024 * 1024 - overhead)).toBe(true);
    expect(fits(1024 * 1024 - overhead + 1)).toBe(false);
    expect(fits(1_500_000)).toBe(false);
  });
});

describe("the bridge's decoder is bounded by MAX_PACKET_SIZE", () => {
  it("a header announcing 64 MiB ends the stream at the header, with nothing buffered", () => {
    const input = new BridgeInput(config, bridge);
    // PUBLISH QoS 0, Remaining Length 64 MiB (four bytes), then the start of a body.
    const header = new Uint8Array([0x30, 0x80, 0x80, 0x80, 0x20]);
    const body = new Uint8Array(512 * 1024);
    const { packets, error } = input.push(new Uint8Array([...header, ...body]));
    expect(packets).toEqual([]);
    expect(error).toMatch(/exceeds the maximum of 1048576/);
    expect(input.buffered).toBe(0);
    // And nothing more is kept afterwards.
    input.push(body);
    expect(input.buffered).toBe(0);
  });

  it("a packet of MAX_PACKET_SIZE is decoded", () => {
    const input = new BridgeInput(config, bridge);
    const packet = encode(publish("sensors/t", new Uint8Array(0)), 5);
    const whole = encode(publish("sensors/t", new Uint8Array(1024 * 1024 - packet.length - 2)), 5);
    expect(whole.length).toBe(1024 * 1024);
    expect(input.push(whole).packets).toHaveLength(1);
  });
});
