/**
 * The TCP-to-WebSocket relay (scripts/relay/tcp-to-websocket.ts) on loopback: bytes
 * pass unchanged both ways with the "mqtt" subprotocol, and a far end that stops
 * reading stops the device: the relay holds a bounded amount, loses nothing, and
 * delivers it all once reading resumes.
 */
import { once } from "node:events";
import type { AddressInfo, Server } from "node:net";
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { createWebSocketStream, type WebSocket, WebSocketServer } from "ws";
import { startRelay } from "../../scripts/relay/tcp-to-websocket.ts";

const closers: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  await Promise.all(closers.splice(0).map((c) => c()));
});

async function setUp(): Promise<{ device: Socket; far: Promise<{ ws: WebSocket; protocol: string }> }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(wss, "listening");
  const far = new Promise<{ ws: WebSocket; protocol: string }>((resolve) =>
    wss.once("connection", (ws) => resolve({ ws, protocol: ws.protocol })),
  );
  closers.push(
    () =>
      new Promise((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(resolve);
      }),
  );
  const relay: Server = await startRelay({
    host: "127.0.0.1",
    port: 0,
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}/mqtt`,
  });
  closers.push(() => new Promise((resolve) => relay.close(resolve)));
  const device = connect((relay.address() as AddressInfo).port, "127.0.0.1");
  await once(device, "connect");
  closers.push(async () => device.destroy());
  return { device, far };
}

describe("TCP-to-WebSocket relay", () => {
  it("carries bytes both ways unchanged, with the mqtt subprotocol", async () => {
    const { device, far } = await setUp();
    // A CONNECT's first bytes, sent before the WebSocket is open: held, then sent.
    device.write(Buffer.from([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51]));
    const { ws, protocol } = await far;
    expect(protocol).toBe("mqtt");
    const farStream = createWebSocketStream(ws);
    const [first] = (await once(farStream, "data")) as [Buffer];
    expect([...first]).toEqual([0x10, 0x0c, 0x00, 0x04, 0x4d, 0x51]);
    farStream.write(Buffer.from([0x20, 0x02, 0x00, 0x00]));
    const [back] = (await once(device, "data")) as [Buffer];
    expect([...back]).toEqual([0x20, 0x02, 0x00, 0x00]);
  });

  it("stops reading from the device while the far end does not read, and loses nothing", async () => {
    const { device, far } = await setUp();
    const { ws } = await far;
    // The far end reads nothing yet: its stream stays paused.
    const farStream = createWebSocketStream(ws);
    farStream.pause();
    const chunk = Buffer.alloc(1024 * 1024, 0x5a);
    const TOTAL = 256;
    let written = 0;
    // Write until the relay stops taking bytes (no 'drain' within a second).
    while (written < TOTAL) {
      written++;
      if (device.write(chunk)) continue;
      const drained = await Promise.race([
        once(device, "drain").then(() => true),
        new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 1000)),
      ]);
      if (!drained) break;
    }
    // Kernel buffers on two loopback hops and the streams' high-water marks: far below 256 MiB.
    expect(written).toBeLessThan(64);
    // Reading resumes: everything written arrives.
    let received = 0;
    farStream.on("data", (b: Buffer) => {
      received += b.length;
    });
    farStream.resume();
    const expected = written * chunk.length;
    const deadline = Date.now() + 20_000;
    while (received < expected && Date.now() < deadline) await once(farStream, "data");
    expect(received).toBe(expected);
  }, 30_000);
});
