/**
 * Gathers the packets sent to each socket while a batch of messages is
 * delivered, and sends them as one WebSocket frame per socket. A subscriber that
 * receives a hundred messages in one batch then costs one send instead of a
 * hundred. MQTT allows it: a frame may hold several packets and receivers must
 * not assume packets are aligned with frames (MQTT-6.0.0-2).
 */

/** A frame is sent as soon as it holds this much, so frames stay modest. */
export const MAX_GATHERED_BYTES = 64 * 1024;

interface Pending {
  parts: Uint8Array[];
  bytes: number;
}

export class FrameGatherer {
  private pending: Map<WebSocket, Pending> | null = null;
  private readonly write: (ws: WebSocket, bytes: Uint8Array) => void;

  constructor(write: (ws: WebSocket, bytes: Uint8Array) => void) {
    this.write = write;
  }

  /** Runs `fn`, sending what it sent to each socket as one frame at the end. */
  gather<T>(fn: () => T): T {
    if (this.pending !== null) return fn();
    this.pending = new Map();
    try {
      return fn();
    } finally {
      const pending = this.pending;
      this.pending = null;
      for (const [ws, p] of pending) this.write(ws, join(p));
    }
  }

  send(ws: WebSocket, bytes: Uint8Array): void {
    if (this.pending === null) {
      this.write(ws, bytes);
      return;
    }
    let p = this.pending.get(ws);
    if (p === undefined) {
      p = { parts: [], bytes: 0 };
      this.pending.set(ws, p);
    }
    p.parts.push(bytes);
    p.bytes += bytes.length;
    if (p.bytes >= MAX_GATHERED_BYTES) this.flush(ws);
  }

  /** Sends what is gathered for a socket now (before it is closed, say). */
  flush(ws: WebSocket): void {
    const p = this.pending?.get(ws);
    if (p === undefined) return;
    this.pending?.delete(ws);
    this.write(ws, join(p));
  }
}

function join(p: Pending): Uint8Array {
  if (p.parts.length === 1) return p.parts[0] as Uint8Array;
  const out = new Uint8Array(p.bytes);
  let at = 0;
  for (const part of p.parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
