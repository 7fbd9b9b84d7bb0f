/** The streaming decoder: packets split across chunks, or sharing one. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encode, type Packet, type ProtocolVersion, ReasonCode, StreamDecoder } from "../../mqtt/index.ts";
import { anyPacket, versions } from "../support/arbitraries.ts";
import { hex } from "../support/bytes.ts";

/** Feeds `packets`, encoded, cut after each length of `cuts` (the rest at once): the same packets come out, nothing left. */
function expectSameAfterCuts(packets: Packet[], cuts: number[], version: ProtocolVersion): void {
  const stream = Uint8Array.from(packets.flatMap((p) => Array.from(encode(p, version))));
  const decoder = new StreamDecoder({ version });
  const out: Packet[] = [];
  let pos = 0;
  for (const cut of [...cuts, stream.length]) {
    if (pos >= stream.length) break;
    const end = Math.min(stream.length, pos + cut);
    const result = decoder.push(stream.slice(pos, end));
    expect(result.error).toBeUndefined();
    out.push(...result.packets);
    pos = end;
  }
  expect(out).toEqual(packets);
  expect(decoder.buffered).toBe(0);
}

describe.each(versions)("StreamDecoder, protocol level %i", (version) => {
  it("yields the same packets however the stream is cut", () => {
    fc.assert(
      fc.property(
        fc.array(anyPacket(version), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { maxLength: 40 }),
        (packets, cuts) => {
          expectSameAfterCuts(packets, cuts, version);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("StreamDecoder", () => {
  it("learns the protocol version from CONNECT", () => {
    const decoder = new StreamDecoder();
    const connect = encode(
      {
        type: "connect",
        protocolVersion: 5,
        protocolName: "MQTT",
        clientId: "a",
        cleanStart: true,
        keepAlive: 0,
      },
      5,
    );
    const puback = hex("40 03 00 01 10"); // 5.0 form with a reason code
    const { packets, error } = decoder.push(Uint8Array.from([...connect, ...puback]));
    expect(error).toBeUndefined();
    expect(decoder.version).toBe(5);
    expect(packets[1]).toEqual({ type: "puback", packetId: 1, reasonCode: 0x10 });
  });

  it("holds a 5.0 CONNECT's own Remaining Length to the fewest bytes once its version is known (MQTT-1.5.5-1); 3.1.1's is not", () => {
    const overlong = (version: 4 | 5) => {
      const packet = encode(
        {
          type: "connect",
          protocolVersion: version,
          protocolName: "MQTT",
          clientId: "a",
          cleanStart: true,
          keepAlive: 0,
        },
        version,
      );
      // The same CONNECT with its one-byte Remaining Length in two bytes.
      return Uint8Array.from([
        packet[0] as number,
        (packet[1] as number) | 0x80,
        0x00,
        ...packet.subarray(2),
      ]);
    };
    const v5 = new StreamDecoder().push(overlong(5));
    expect(v5.packets).toEqual([]);
    expect(v5.error).toMatchObject({
      reasonCode: ReasonCode.MalformedPacket,
      message: expect.stringContaining("MQTT-1.5.5-1"),
    });
    const v4 = new StreamDecoder().push(overlong(4));
    expect(v4.error).toBeUndefined();
    expect(v4.packets[0]).toMatchObject({ type: "connect", protocolVersion: 4 });
  });

  it("keeps packets decoded before an error, and stays failed after it", () => {
    const decoder = new StreamDecoder({ version: 4 });
    const result = decoder.push(hex("c0 00 c0 00 36 05 00 01 74 00 01 c0 00"));
    expect(result.packets).toHaveLength(2);
    expect(result.error?.reasonCode).toBe(ReasonCode.MalformedPacket);
    expect(decoder.push(hex("c0 00")).error).toBe(result.error);
  });

  it("holds a header split after its first byte", () => {
    const decoder = new StreamDecoder({ version: 4 });
    expect(decoder.push(hex("30")).packets).toHaveLength(0);
    expect(decoder.push(hex("03 00 01")).packets).toHaveLength(0);
    expect(decoder.push(hex("74")).packets).toEqual([
      { type: "publish", topic: "t", payload: new Uint8Array(0), qos: 0, dup: false, retain: false },
    ]);
  });

  it("refuses a packet over the maximum as soon as its length is known (0x95)", () => {
    const decoder = new StreamDecoder({ version: 5, maxPacketSize: 100 });
    const result = decoder.push(hex("30 ff 7f"));
    expect(result.error?.reasonCode).toBe(ReasonCode.PacketTooLarge);
  });
});

describe("StreamDecoder refuses a bad first byte at once", () => {
  it("does not wait for the body of a reserved packet type (2.2.1: type 0 is forbidden)", () => {
    const decoder = new StreamDecoder({ version: 4 });
    // type 0 announcing 100 bytes, only 3 arrive
    expect(decoder.push(hex("00 64 01 02 03")).error?.reasonCode).toBe(ReasonCode.MalformedPacket);
  });
  it("does not wait for the body of a SUBSCRIBE with bad flags (MQTT-3.8.1-1)", () => {
    const decoder = new StreamDecoder({ version: 5 });
    expect(decoder.push(hex("80 64 00")).error?.reasonCode).toBe(ReasonCode.MalformedPacket);
  });
});

describe("StreamDecoder is pulled one packet at a time", () => {
  it("decodes nothing at feed: a frame of 100,000 PINGREQs costs its bytes until each is asked for", () => {
    const decoder = new StreamDecoder({ version: 4 });
    const frame = new Uint8Array(200_000);
    for (let i = 0; i < frame.length; i += 2) frame[i] = 0xc0;
    decoder.feed(frame);
    expect(decoder.buffered).toBe(200_000);
    expect(decoder.next()).toEqual({ type: "pingreq" });
    expect(decoder.buffered).toBe(199_998);
    decoder.discard();
    expect(decoder.buffered).toBe(0);
    expect(decoder.next()).toBeUndefined();
  });

  it("holds only the bytes that arrived, never the length a header announces", () => {
    const decoder = new StreamDecoder({ version: 4 });
    // A PUBLISH announcing 268,435,455 bytes (the largest Remaining Length), 6 bytes sent.
    decoder.feed(hex("30 ff ff ff 7f 00"));
    expect(decoder.next()).toBeUndefined();
    expect(decoder.buffered).toBe(6);
  });

  it("joins a packet split over many chunks only once all of it is here", () => {
    const decoder = new StreamDecoder({ version: 4 });
    const bytes = encode(
      {
        type: "publish",
        topic: "a/b",
        payload: new Uint8Array(300).fill(7),
        qos: 0,
        dup: false,
        retain: false,
      },
      4,
    );
    for (let i = 0; i < bytes.length; i += 7) {
      expect(decoder.next()).toBeUndefined();
      decoder.feed(bytes.slice(i, i + 7));
    }
    const packet = decoder.next();
    expect(packet).toMatchObject({ type: "publish", topic: "a/b" });
    expect(decoder.buffered).toBe(0);
  });
});

describe("StreamDecoder fed a byte a frame (a client that splits its packets as finely as it can)", () => {
  it("decodes a 1 MiB PUBLISH sent one byte at a time, and the next packets after it", () => {
    // Before: each consumed chunk was removed with Array.shift, n² steps for a packet in
    // n chunks (a 64 KiB packet took 14 s); this run would not end within the test's limit.
    const payload = Uint8Array.from({ length: 2 ** 20 - 64 }, (_, i) => i & 0xff);
    const publish = encode({ type: "publish", topic: "t", qos: 0, dup: false, retain: false, payload }, 4);
    const ping = encode({ type: "pingreq" }, 4);
    const stream = new Uint8Array(publish.length + ping.length);
    stream.set(publish);
    stream.set(ping, publish.length);
    const d = new StreamDecoder({ version: 4, maxPacketSize: 2 ** 20 });
    const got: Packet[] = [];
    const errors: unknown[] = [];
    for (let i = 0; i < stream.length; i++) {
      const r = d.push(stream.subarray(i, i + 1));
      if (r.error !== undefined) errors.push(r.error);
      got.push(...r.packets);
    }
    expect(errors).toEqual([]);
    expect(got.map((p) => p.type)).toEqual(["publish", "pingreq"]);
    const p = got[0] as Extract<Packet, { type: "publish" }>;
    expect(p.payload).toEqual(payload);
    expect(d.buffered).toBe(0);
  });

  it("copies small chunks into buffers of its own: what it holds follows the bytes, not the frames", () => {
    const d = new StreamDecoder({ version: 4 });
    // The start of a PUBLISH announcing 100,000 bytes, then 50,000 one-byte chunks.
    d.feed(Uint8Array.from([0x30, 0xa0, 0x8d, 0x06]));
    for (let i = 0; i < 50_000; i++) d.feed(Uint8Array.of(i & 0xff));
    expect(d.next()).toBeUndefined();
    expect(d.buffered).toBe(50_004);
    // The first chunk, which came with nothing buffered, is kept as it came; the
    // 50,000 behind it fill buffers of 64 bytes doubling to 16 KiB: 64 + … + 8,192
    // (16,320 bytes in 8), then three of 16 KiB.
    const chunks = (d as unknown as { chunks: Uint8Array[] }).chunks;
    expect(chunks.map((c) => c.buffer.byteLength)).toEqual([
      4, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16_384, 16_384, 16_384,
    ]);
    expect(chunks.slice(1).reduce((sum, c) => sum + c.length, 0)).toBe(50_000);
  });
});

describe("StreamDecoder, small and large chunks in turn", () => {
  /** Bytes of memory the decoder's chunks keep alive (each buffer once). */
  const footprint = (d: StreamDecoder) => {
    const buffers = new Set((d as unknown as { chunks: Uint8Array[] }).chunks.map((c) => c.buffer));
    return [...buffers].reduce((sum, b) => sum + b.byteLength, 0);
  };

  it("keeps the bytes it is counted for, not a 16 KiB buffer per small chunk left behind a large one", () => {
    const d = new StreamDecoder({ version: 4 });
    // The start of a PUBLISH announcing 1,000,000 bytes, then 1-byte and 1 KiB chunks in turn.
    const payload = Uint8Array.from({ length: 1_000_000 - 3 }, (_, i) => i % 251);
    const packet = encode({ type: "publish", topic: "t", qos: 0, dup: false, retain: false, payload }, 4);
    let pos = 0;
    const send = (n: number) => {
      d.feed(packet.slice(pos, pos + n));
      pos += n;
    };
    send(5);
    for (let i = 0; i < 500; i++) {
      send(1);
      send(1024);
    }
    expect(d.buffered).toBe(5 + 500 * 1025);
    // Each 1-byte chunk copied, then cut to its byte when the large one comes: 17 times
    // the bytes (16 KiB a pair) without the cut.
    expect(footprint(d)).toBe(d.buffered);
    send(packet.length - pos);
    const decoded = d.next();
    expect(decoded).toMatchObject({ type: "publish", topic: "t" });
    expect(
      decoded !== undefined && "type" in decoded && decoded.type === "publish" && decoded.payload,
    ).toEqual(payload);
    expect(d.buffered).toBe(0);
  });

  it("a frame whose last byte starts the next packet is not kept whole: what stays is the bytes counted", () => {
    const d = new StreamDecoder({ version: 4 });
    const big = encode(
      { type: "publish", topic: "t", qos: 0, dup: false, retain: false, payload: new Uint8Array(60_000) },
      4,
    );
    // Each frame ends the PINGREQ the one before began, carries a 60 KB PUBLISH, and begins another.
    d.feed(Uint8Array.of(0xc0));
    for (let i = 0; i < 20; i++) {
      const frame = new Uint8Array(1 + big.length + 1);
      frame.set([0x00]);
      frame.set(big, 1);
      frame.set([0xc0], 1 + big.length);
      d.feed(frame);
      expect(d.next()).toMatchObject({ type: "pingreq" });
      expect(d.next()).toMatchObject({ type: "publish", topic: "t" });
      expect(d.next()).toBeUndefined();
      expect(d.buffered).toBe(1);
      // Before: every frame read stayed until 64 had been (3.8 MB for one byte counted).
      expect(footprint(d)).toBe(1);
    }
  });

  it("a reader that stops after any packet (held back) keeps at most twice the bytes not decoded yet, or 4 KiB; one that reads through copies nothing", () => {
    const d = new StreamDecoder({ version: 4 });
    const one = encode(
      { type: "publish", topic: "t", qos: 0, dup: false, retain: false, payload: new Uint8Array(95) },
      4,
    );
    const frame = new Uint8Array(one.length * 1_000);
    for (let i = 0; i < 1_000; i++) frame.set(one, i * one.length);
    d.feed(frame);
    for (let i = 0; i < 1_000; i++) {
      expect(d.next()).toMatchObject({ type: "publish" });
      // As the gateway does when decoding is held back after a packet.
      d.compact();
      expect(footprint(d)).toBeLessThanOrEqual(Math.max(2 * d.buffered, 4 * 1024));
    }
    expect(d.buffered).toBe(0);
    // Read through without stopping: the frame is read where it lies, to its end.
    const through = new StreamDecoder({ version: 4 });
    through.feed(frame);
    const chunks = () => (through as unknown as { chunks: Uint8Array[] }).chunks;
    for (let i = 0; i < 999; i++) {
      through.next();
      expect(chunks()[0]).toBe(frame);
    }
  });

  it("yields the same packets with chunks of a few bytes and of over 1 KiB mixed", () => {
    const published = fc.record({
      topic: fc.constantFrom("a", "b/c"),
      payload: fc.uint8Array({ maxLength: 5_000 }),
    });
    fc.assert(
      fc.property(
        fc.array(published, { minLength: 1, maxLength: 8 }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1_024, max: 3_000 })), {
          maxLength: 60,
        }),
        (messages, cuts) => {
          const packets: Packet[] = messages.map((m) => ({
            type: "publish",
            qos: 0,
            dup: false,
            retain: false,
            ...m,
          }));
          expectSameAfterCuts(packets, cuts, 5);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("StreamDecoder, a frame with nothing buffered", () => {
  it("is read where it lies (no copy), and only bytes behind a partial packet are copied", () => {
    const d = new StreamDecoder({ version: 4 });
    const chunks = () => (d as unknown as { chunks: Uint8Array[] }).chunks;
    const frame = hex("c0 00 30");
    d.feed(frame);
    // The same memory, not a copy into a tail buffer.
    expect(chunks()[0]?.buffer).toBe(frame.buffer);
    expect(d.next()).toMatchObject({ type: "pingreq" });
    expect(d.next()).toBeUndefined();
    // Behind the partial PUBLISH's first byte, the next small chunk is copied.
    const rest = hex("03 00 01 74");
    d.feed(rest);
    expect(chunks().length).toBe(2);
    expect(chunks()[1]?.buffer).not.toBe(rest.buffer);
    expect(d.next()).toMatchObject({ type: "publish", topic: "t" });
    expect(d.buffered).toBe(0);
  });
});

describe("StreamDecoder.skip", () => {
  const ping = hex("c0 00");
  const publish = (payload: number) =>
    encode(
      { type: "publish", topic: "t", qos: 0, dup: false, retain: false, payload: new Uint8Array(payload) },
      4,
    );

  it("passes over the packets it takes without decoding them, and is asked only about whole packets in one chunk", () => {
    const decoder = new StreamDecoder({ version: 4 });
    const asked: Array<[number, number, number]> = [];
    decoder.skip = (buf, start, headerLen, end) => {
      asked.push([start, headerLen, end]);
      return buf[start] === 0x30;
    };
    const big = publish(2000);
    const stream = Uint8Array.from([...publish(2), ...publish(2), ...ping, ...big]);
    // The last PUBLISH arrives in two chunks (each large enough to be kept as it came):
    // joined, it is decoded without asking.
    const { packets, error } = decoder.push(stream.subarray(0, stream.length - 1100));
    expect(error).toBeUndefined();
    expect(packets).toEqual([{ type: "pingreq" }]);
    expect(asked).toEqual([
      [0, 2, 7],
      [7, 2, 14],
      [14, 2, 16],
    ]);
    expect(decoder.push(stream.subarray(stream.length - 1100)).packets).toEqual([
      { type: "publish", topic: "t", qos: 0, dup: false, retain: false, payload: new Uint8Array(2000) },
    ]);
    expect(asked).toHaveLength(3);
    expect(decoder.buffered).toBe(0);
  });
});
