/**
 * Eclipse Paho Python (Debian's python3-paho-mqtt, websockets transport): a second,
 * independent client implementation connecting, subscribing and publishing at
 * QoS 0, 1 and 2 with a retained message.
 */
import { execFile } from "node:child_process";
import { resolve } from "node:path";
import { promisify } from "node:util";
import { describe, expect, inject, it } from "vitest";
import { unique } from "../support/clients.ts";

const run = promisify(execFile);
const url = new URL(inject("brokerUrl"));

describe("Eclipse Paho (Python) over WebSocket", () => {
  it("connects, subscribes and publishes at QoS 0, 1 and 2 with a retained message", async () => {
    const prefix = unique("paho");
    const { stdout } = await run(
      "/usr/bin/python3",
      [resolve(import.meta.dirname, "paho_client.py"), url.hostname, url.port, prefix],
      { timeout: 60_000 },
    );
    const result = JSON.parse(stdout.trim().split("\n").at(-1) as string);
    expect(result.connack).toBe(0);
    expect(result.granted).toEqual([0, 1, 2]);
    const byQos = [...result.messages].sort((a: { qos: number }, b: { qos: number }) => a.qos - b.qos);
    expect(byQos).toEqual([
      { topic: `${prefix}/q0`, payload: "paho qos 0", qos: 0 },
      { topic: `${prefix}/q1`, payload: "paho qos 1", qos: 1 },
      { topic: `${prefix}/q2`, payload: "paho qos 2", qos: 2 },
    ]);
    expect(result.retained).toEqual({ payload: "paho qos 1", retain: true });
  });
});
