/** BRIDGES (broker/bridges.ts): what it accepts and refuses, and how topics map between the sides. */
import { describe, expect, it } from "vitest";
import { MAX_BRIDGES, mapTopic, parseBridges } from "../../broker/bridges.ts";

const topic = { pattern: "sensors/#", direction: "in", qos: 1, localPrefix: "plant/" };
const parse = (b: unknown) => parseBridges(JSON.stringify(b));

describe("parseBridges", () => {
  it("fills in defaults: TLS on (port 8883; plain needs tls false, port 1883), MQTT 5.0, both directions, QoS 0", () => {
    const { bridges, problems } = parse([
      { name: "a", host: "h", tls: false, topics: [topic] },
      { name: "b", host: "h", topics: [{ pattern: "x/#" }] },
    ]);
    expect(problems).toEqual([]);
    expect(bridges[0]).toMatchObject({
      port: 1883,
      tls: false,
      protocolVersion: 5,
      clientId: "nimbus-bridge-a",
    });
    expect(bridges[1]).toMatchObject({ port: 8883, tls: true });
    expect(parse([{ name: "c", host: "h", tls: "no", topics: [topic] }]).problems).toEqual([
      'bridge "c": tls is true (the default) or false',
    ]);
    expect(bridges[1]?.topics[0]).toEqual({
      pattern: "x/#",
      direction: "both",
      qos: 0,
      localPrefix: "",
      remotePrefix: "",
    });
  });

  it("names the bridge and what is wrong", () => {
    const { problems } = parse([
      { name: "p", host: "h", port: 70000, topics: [topic] },
      { name: "t", host: "h", topics: [] },
      { name: "w", host: "h", topics: [{ ...topic, localPrefix: "a/+/" }] },
      { name: "f", host: "h", topics: [{ ...topic, pattern: "a/#/b" }] },
      { name: "q", host: "h", topics: [{ ...topic, qos: 2 }] },
      { name: "v", host: "h", protocolVersion: 3, topics: [topic] },
      { name: "p", host: "h", topics: [topic] },
      { name: "p", host: "h", topics: [topic] },
    ]);
    expect(problems).toEqual([
      'bridge "p": port must be 1 to 65535',
      'bridge "t": topics lists at least one topic',
      'bridge "w": the local prefix has a wildcard',
      'bridge "f": the local filter "plant/a/#/b" is not valid (\'#\' must be the whole last level (MQTT-4.7.1-2))',
      'bridge "q": a topic\'s qos is 0 or 1',
      'bridge "v": protocolVersion is 5 or 4',
      'BRIDGES[7]: the name "p" is used twice',
    ]);
    const many = Array.from({ length: MAX_BRIDGES + 1 }, (_, i) => ({
      name: `b${i}`,
      host: "h",
      topics: [topic],
    }));
    expect(parse(many).problems).toEqual([`BRIDGES has ${MAX_BRIDGES + 1} entries; at most ${MAX_BRIDGES}`]);
  });
});

describe("mapTopic", () => {
  it("replaces one side's prefix with the other's, and leaves a topic without it alone", () => {
    expect(mapTopic("sensors/t1", "", "plant/")).toBe("plant/sensors/t1");
    expect(mapTopic("plant/sensors/t1", "plant/", "")).toBe("sensors/t1");
    expect(mapTopic("cmd/x", "plant/", "")).toBeUndefined();
  });
});
