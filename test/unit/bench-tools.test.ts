/**
 * The benchmark's own instruments: the frame counter that says how many WebSocket
 * frames each packet took, and the results file whose sections each part replaces.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { FrameCounter } from "../../bench/load/clients/frames.ts";
import { writeSection } from "../../bench/load/report.ts";
import { encode } from "../../mqtt/index.ts";

let counter: FrameCounter;
beforeAll(async () => {
  counter = await FrameCounter.start();
});
afterAll(async () => {
  await counter.close();
});

describe("FrameCounter", () => {
  it("counts the frames each packet spanned: one split over three frames, two sharing one, one alone", async () => {
    counter.take();
    const ws = new WebSocket(counter.url, "mqtt");
    await new Promise((resolve) => ws.once("open", resolve));
    const connack = new Promise((resolve) => ws.once("message", resolve));
    const connect = encode(
      {
        type: "connect",
        protocolVersion: 4,
        protocolName: "MQTT",
        clientId: "frames",
        cleanStart: true,
        keepAlive: 60,
      },
      4,
    );
    // CONNECT in three pieces.
    ws.send(connect.subarray(0, 3));
    ws.send(connect.subarray(3, 10));
    ws.send(connect.subarray(10));
    await connack;
    const publish = (packetId: number) =>
      encode(
        {
          type: "publish",
          topic: "t",
          qos: 1,
          dup: false,
          retain: false,
          packetId,
          payload: new Uint8Array(4),
        },
        4,
      );
    // Two PUBLISH in one frame, with the first bytes of a third; then its rest with a PINGREQ.
    const third = publish(3);
    const ping = encode({ type: "pingreq" }, 4);
    const acks = new Promise<void>((resolve) => {
      let n = 0;
      ws.on("message", () => {
        if (++n === 4) resolve();
      });
    });
    ws.send(Buffer.concat([publish(1), publish(2), third.subarray(0, 2)]));
    ws.send(Buffer.concat([third.subarray(2), ping]));
    await acks;
    ws.close();
    const c = counter.take();
    expect(c.byType.connect).toEqual({ packets: 1, frames: 3 });
    // PUBLISH 1 and 2: one frame each (the same one); PUBLISH 3: two frames.
    expect(c.byType.publish).toEqual({ packets: 3, frames: 4 });
    expect(c.byType.pingreq).toEqual({ packets: 1, frames: 1 });
    expect(c.frames).toBe(5);
    expect(c.packets).toBe(5);
  });
});

describe("writeSection", () => {
  it("replaces its own section, keeps the others in their order, and adds a missing one", () => {
    const file = join(mkdtempSync(join(tmpdir(), "nimbus-results-")), "results.md");
    writeSection(file, "storms", "## Storms\n\nfirst");
    writeSection(file, "brokers", "## Brokers\n\none");
    writeSection(file, "storms", "## Storms\n\nsecond");
    const text = readFileSync(file, "utf8");
    expect(text.indexOf("## Brokers")).toBeLessThan(text.indexOf("## Storms"));
    expect(text).toContain("second");
    expect(text).not.toContain("first");
    expect(text.match(/<!-- section storms -->/g)).toHaveLength(1);
    // The floor section, copied in by hand from bench:floor, survives a run of another section.
    writeFileSync(file, `${text}\n<!-- section floor -->\n## Floor\n<!-- /section floor -->\n`);
    writeSection(file, "overload", "## Overload");
    expect(readFileSync(file, "utf8")).toContain("## Floor");
    // A file written before sections existed is replaced by the section written.
    writeFileSync(file, "# Load benchmark\n\nold table\n");
    writeSection(file, "clients", "## Clients");
    expect(readFileSync(file, "utf8")).not.toContain("old table");
  });
});
