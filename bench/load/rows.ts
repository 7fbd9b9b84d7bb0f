/**
 * `node bench/load/rows.ts [--gateways G --shards S] [--slots N] [--seconds S]`:
 * the rows written per delivered message of persistent and clean sessions, raw
 * client and MQTT.js (Node, whole packets), spread and burst traffic, against one
 * Nimbus layout: the persistent rows of the `--clients` section without its other
 * parts, to measure a change to the gateway's outbound storage quickly. Prints a
 * table; records nothing.
 */
import type { Sessions } from "../capacity/units.ts";
import type { Traffic } from "./clients/core.ts";
import { allLibraries } from "./clients/libraries.ts";
import { Meter } from "./meter.ts";
import { fixed, int, money, table } from "./report.ts";
import { measureMessages } from "./sections/clients.ts";
import { nimbus } from "./targets.ts";

const value = (name: string, fallback: number) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const layout = { shards: value("shards", 1), gateways: value("gateways", 1) };
const slots = value("slots", 200);
const seconds = value("seconds", 10);
const names = ["raw (one frame a packet)", "MQTT.js (Node) + connectWholePackets"];
const libraries = allLibraries().filter((l) => names.includes(l.name));
const rows: string[][] = [];
const t = await nimbus(layout.shards, layout.gateways);
try {
  if (t.stats === undefined) throw new Error("Nimbus target without stats");
  const meter = await Meter.calibrate(t.stats);
  for (const lib of libraries) {
    for (const sessions of ["persistent", "clean"] as Sessions[]) {
      for (const traffic of [
        { kind: "spread", seconds },
        { kind: "burst", each: 10 },
      ] as Traffic[]) {
        console.error(`— ${t.name}: ${lib.name}, ${sessions}, ${traffic.kind}`);
        const r = await measureMessages(t, meter, lib, layout, sessions, traffic, slots);
        rows.push([
          lib.name,
          `${layout.shards}×${layout.gateways}`,
          sessions,
          traffic.kind,
          int(r.delivered),
          fixed(r.delivered > 0 ? r.rowsWritten / r.delivered : Number.NaN, 2),
          money(r.dollarsPerMillion),
        ]);
      }
    }
  }
} finally {
  await t.stop();
  for (const lib of libraries) await lib.stop();
}
console.log(
  table(
    [
      "client",
      "layout",
      "sessions",
      "traffic",
      "delivered",
      "rows written / delivered",
      "$ / million delivered",
    ],
    rows,
  ),
);
