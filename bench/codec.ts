/**
 * `npm run bench:codec`: the Nimbus codec against mqtt-packet (the codec MQTT.js
 * uses), and topic matching against an index of 100,000 filters. One table.
 */
import mqttPacket from "mqtt-packet";
import {
  encode,
  type Packet,
  type ProtocolVersion,
  StreamDecoder,
  SubscriptionIndex,
  topicMatches,
} from "../mqtt/index.ts";
import { formatRate, measure, printTable } from "./harness.ts";

const quick = process.argv.includes("--quick");
const MS = quick ? 60 : 500;

type MpObject = Record<string, unknown>;

function publish(size: number, v5: boolean): { ours: Packet; mp: MpObject } {
  const payload = new Uint8Array(size).fill(0x61);
  const properties = v5
    ? {
        messageExpiryInterval: 3600,
        contentType: "application/json",
        userProperties: [["trace", "abc123"]] as Array<[string, string]>,
      }
    : undefined;
  const ours: Packet = {
    type: "publish",
    topic: "building/7/floor/3/room/12/temperature",
    payload,
    qos: 1,
    dup: false,
    retain: false,
    packetId: 4242,
    ...(properties ? { properties } : {}),
  };
  const mp: MpObject = {
    cmd: "publish",
    topic: ours.topic,
    payload: Buffer.from(payload),
    qos: 1,
    dup: false,
    retain: false,
    messageId: 4242,
    ...(properties
      ? {
          properties: {
            messageExpiryInterval: 3600,
            contentType: "application/json",
            userProperties: { trace: "abc123" },
          },
        }
      : {}),
  };
  return { ours, mp };
}

function subscribe(v5: boolean): { ours: Packet; mp: MpObject } {
  const filters = ["building/+/floor/+/room/+/temperature", "alerts/#", "devices/abc/commands"];
  return {
    ours: {
      type: "subscribe",
      packetId: 7,
      subscriptions: filters.map((topicFilter) => ({
        topicFilter,
        qos: 1 as const,
        noLocal: false,
        retainAsPublished: v5,
        retainHandling: 0 as const,
      })),
      ...(v5 ? { properties: { subscriptionIdentifiers: [12] } } : {}),
    },
    mp: {
      cmd: "subscribe",
      messageId: 7,
      subscriptions: filters.map((topic) =>
        v5 ? { topic, qos: 1, nl: false, rap: true, rh: 0 } : { topic, qos: 1 },
      ),
      ...(v5 ? { properties: { subscriptionIdentifier: 12 } } : {}),
    },
  };
}

interface Case {
  name: string;
  version: ProtocolVersion;
  ours: Packet;
  mp: MpObject;
}

const cases: Case[] = [
  { name: "PUBLISH 64 B, 3.1.1", version: 4, ...publish(64, false) },
  { name: "PUBLISH 4 KiB, 3.1.1", version: 4, ...publish(4096, false) },
  { name: "PUBLISH 64 B, 5.0 + properties", version: 5, ...publish(64, true) },
  { name: "PUBLISH 4 KiB, 5.0 + properties", version: 5, ...publish(4096, true) },
  { name: "SUBSCRIBE 3 filters, 3.1.1", version: 4, ...subscribe(false) },
  { name: "SUBSCRIBE 3 filters, 5.0", version: 5, ...subscribe(true) },
];

const rows: string[][] = [];
let sink = 0;

for (const c of cases) {
  const bytes = encode(c.ours, c.version);
  const mpBytes = mqttPacket.generate(c.mp as never, { protocolVersion: c.version } as never);
  if (Buffer.compare(Buffer.from(bytes), mpBytes) !== 0) {
    throw new Error(`${c.name}: the two codecs disagree on the bytes; the comparison would be unfair`);
  }
  const decoder = new StreamDecoder({ version: c.version });
  const ourDecode = measure(() => {
    sink += decoder.push(bytes).packets.length;
  }, MS);
  const parser = mqttPacket.parser({ protocolVersion: c.version } as never);
  parser.on("packet", () => {
    sink++;
  });
  const mpDecode = measure(() => {
    parser.parse(mpBytes);
  }, MS);
  rows.push(row(`decode ${c.name}`, ourDecode.opsPerSec, mpDecode.opsPerSec));

  const ourEncode = measure(() => {
    sink += encode(c.ours, c.version).length;
  }, MS);
  const mpEncode = measure(() => {
    sink += mqttPacket.generate(c.mp as never, { protocolVersion: c.version } as never).length;
  }, MS);
  rows.push(row(`encode ${c.name}`, ourEncode.opsPerSec, mpEncode.opsPerSec));
}

function row(name: string, ours: number, theirs: number): string[] {
  return [name, formatRate(ours), formatRate(theirs), `${(ours / theirs).toFixed(2)}×`];
}

// Matching: 100,000 filters shaped like device fleets, a fifth of them wildcards.
const FILTERS = 100_000;
const index = new SubscriptionIndex<number>();
const filters: string[] = [];
for (let i = 0; i < FILTERS; i++) {
  const site = i % 100;
  const device = Math.floor(i / 100);
  const f =
    i % 5 === 0
      ? `site/${site}/+/${device}/#`
      : i % 7 === 0
        ? `site/${site}/device/+/status`
        : `site/${site}/device/${device}/status`;
  filters.push(f);
  index.add(f, `c${i}`, i);
}
const topics = Array.from({ length: 64 }, (_, i) => `site/${i % 100}/device/${(i * 37) % 1000}/status`);
let t = 0;
const indexMatch = measure(() => {
  index.forEachMatch(topics[t++ & 63] as string, () => {
    sink++;
  });
}, MS);
const linear = measure(
  () => {
    const topic = topics[t++ & 63] as string;
    for (const f of filters) if (topicMatches(f, topic)) sink++;
  },
  quick ? 60 : 300,
);
rows.push([
  `match a topic against ${FILTERS.toLocaleString("en")} filters (vs a linear scan)`,
  formatRate(indexMatch.opsPerSec),
  formatRate(linear.opsPerSec),
  `${(indexMatch.opsPerSec / linear.opsPerSec).toFixed(0)}×`,
]);

console.log(
  `\nNimbus codec benchmark — node ${process.version}, ${MS} ms per row${quick ? " (quick)" : ""}\n`,
);
printTable(["operation", "Nimbus", "mqtt-packet 9", "ratio"], rows);
if (sink === -1) console.log(sink);
