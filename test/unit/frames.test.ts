import { describe, expect, it } from "vitest";
import { FrameGatherer, MAX_GATHERED_BYTES } from "../../durable-objects/gateway/frames.ts";

/** Stands in for a WebSocket: only its identity matters to the gatherer. */
const socket = (name: string) => ({ name }) as unknown as WebSocket;

function recorder() {
  const frames: Array<[WebSocket, number[]]> = [];
  const g = new FrameGatherer((ws, bytes) => frames.push([ws, [...bytes]]));
  return { g, frames };
}

describe("FrameGatherer (MQTT-6.0.0-2: a frame may hold several packets)", () => {
  it("sends at once outside a gathering", () => {
    const { g, frames } = recorder();
    const a = socket("a");
    g.send(a, Uint8Array.of(1, 2));
    g.send(a, Uint8Array.of(3));
    expect(frames).toEqual([
      [a, [1, 2]],
      [a, [3]],
    ]);
  });

  it("joins what one gathering sends to each socket into one frame, in order", () => {
    const { g, frames } = recorder();
    const a = socket("a");
    const b = socket("b");
    const result = g.gather(() => {
      g.send(a, Uint8Array.of(1));
      g.send(b, Uint8Array.of(9));
      g.send(a, Uint8Array.of(2, 3));
      expect(frames).toEqual([]);
      return "done";
    });
    expect(result).toBe("done");
    expect(frames).toEqual([
      [a, [1, 2, 3]],
      [b, [9]],
    ]);
  });

  it("a nested gathering belongs to the outer one", () => {
    const { g, frames } = recorder();
    const a = socket("a");
    g.gather(() => {
      g.send(a, Uint8Array.of(1));
      g.gather(() => g.send(a, Uint8Array.of(2)));
      expect(frames).toEqual([]);
    });
    expect(frames).toEqual([[a, [1, 2]]]);
  });

  it("sends a frame early once it reaches the size bound, and flushes before a close", () => {
    const { g, frames } = recorder();
    const a = socket("a");
    const big = new Uint8Array(MAX_GATHERED_BYTES - 1);
    g.gather(() => {
      g.send(a, big);
      g.send(a, Uint8Array.of(7, 7));
      expect(frames.length).toBe(1);
      expect(frames[0]?.[1].length).toBe(MAX_GATHERED_BYTES + 1);
      g.send(a, Uint8Array.of(8));
      g.flush(a);
      expect(frames.length).toBe(2);
    });
    expect(frames.length).toBe(2);
    expect(frames[1]?.[1]).toEqual([8]);
  });

  it("still sends what was gathered when the gathering throws", () => {
    const { g, frames } = recorder();
    const a = socket("a");
    expect(() =>
      g.gather(() => {
        g.send(a, Uint8Array.of(5));
        throw new Error("boom");
      }),
    ).toThrow("boom");
    expect(frames).toEqual([[a, [5]]]);
  });
});
