/**
 * Flooders for the runtime's floor (bench/floor.ts): WebSocket clients writing
 * binary frames of a flood's size (50 small PUBLISH, as the overload benchmark's)
 * while their socket's buffer is under 256 KiB. They run in a thread of their own,
 * so that the clients timed beside them are not late for the flooders' sake.
 */
import WebSocket from "ws";
import { runInThread, serveInThread } from "../load/thread.ts";

/** A flood frame: 50 PUBLISH of about 130 bytes. */
const FRAME_BYTES = 6_500;

async function flooder(url: string, until: number): Promise<number> {
  const ws = new WebSocket(url, { perMessageDeflate: false });
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  const frame = new Uint8Array(FRAME_BYTES);
  let sent = 0;
  while (Date.now() < until && ws.readyState === WebSocket.OPEN) {
    if (ws.bufferedAmount < 256 * 1024) {
      ws.send(frame);
      sent++;
      if (sent % 100 === 0) await new Promise((r) => setImmediate(r));
    } else await new Promise((r) => setTimeout(r, 1));
  }
  ws.terminate();
  return sent;
}

/** `count` flooders at `url` until `until` (Date.now()), in a thread; the frames each sent. */
export function floodThread(url: string, count: number, until: number): Promise<number[]> {
  return runInThread(import.meta.filename, { url, count, until });
}

serveInThread(({ url, count, until }: { url: string; count: number; until: number }) =>
  Promise.all(Array.from({ length: count }, () => flooder(url, until))),
);
