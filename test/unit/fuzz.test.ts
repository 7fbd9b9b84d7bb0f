/**
 * Fuzzing the decoder: random byte strings, and valid packets with bytes flipped,
 * inserted, removed or cut, only ever give packets or a typed DecodeError. The
 * decoder never throws, never reads past its input and always terminates.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type DecodeError,
  encode,
  type ProtocolVersion,
  ReasonCode,
  StreamDecoder,
} from "../../mqtt/index.ts";
import { anyPacket, versions } from "../support/arbitraries.ts";

const KNOWN_CODES = new Set<number>([
  ReasonCode.MalformedPacket,
  ReasonCode.ProtocolError,
  ReasonCode.UnsupportedProtocolVersion,
  ReasonCode.PacketTooLarge,
]);

function assertTyped(error: DecodeError | undefined): void {
  if (error === undefined) return;
  expect(error.ok).toBe(false);
  expect(KNOWN_CODES.has(error.reasonCode), `reason 0x${error.reasonCode.toString(16)}`).toBe(true);
  expect(typeof error.message).toBe("string");
}

/** Feeds `bytes` in the given chunk sizes; returns what the decoder gave. */
function feed(bytes: Uint8Array, version: ProtocolVersion, cuts: number[], maxPacketSize?: number) {
  const decoder = new StreamDecoder({ version, maxPacketSize });
  let pos = 0;
  let error: DecodeError | undefined;
  let count = 0;
  for (const cut of [...cuts, bytes.length]) {
    const end = Math.min(bytes.length, pos + cut);
    const result = decoder.push(bytes.subarray(pos, end));
    count += result.packets.length;
    error ??= result.error;
    pos = end;
    if (pos >= bytes.length) break;
  }
  return { count, error, buffered: decoder.buffered };
}

const mutation = fc.oneof(
  fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant("set" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat() }),
  fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(bytes: Uint8Array, mutations: Mutation[]): Uint8Array {
  let b = Array.from(bytes);
  for (const m of mutations) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.kind === "flip") b[at] = (b[at] as number) ^ (1 << m.bit);
    else if (m.kind === "set") b[at] = m.value;
    else if (m.kind === "insert") b.splice(at, 0, m.value);
    else if (m.kind === "delete") b.splice(at, 1);
    else b = b.slice(0, at);
  }
  return Uint8Array.from(b);
}

describe.each(versions)("decoder fuzzing, protocol level %i", (version) => {
  it("random byte strings give packets or a typed error", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 300 }),
        fc.array(fc.integer({ min: 1, max: 64 })),
        (bytes, cuts) => {
          const { error } = feed(bytes, version, cuts);
          assertTyped(error);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it("mutated valid packet streams give packets or a typed error", () => {
    fc.assert(
      fc.property(
        fc.array(anyPacket(version), { minLength: 1, maxLength: 4 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.array(fc.integer({ min: 1, max: 40 })),
        (packets, mutations, cuts) => {
          const stream = Uint8Array.from(packets.flatMap((p) => Array.from(encode(p, version))));
          const { error } = feed(mutate(stream, mutations), version, cuts);
          assertTyped(error);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("refuses a packet over the maximum size from its header, before buffering its body", () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 200 }), fc.integer({ min: 1, max: 5000 }), (max, bodyLen) => {
        const payload = new Uint8Array(bodyLen);
        const bytes = encode(
          { type: "publish", topic: "t", payload, qos: 0, dup: false, retain: false },
          version,
        );
        // only the header and a few body bytes arrive
        const { error, buffered } = feed(bytes.subarray(0, 8), version, [], max);
        if (bytes.length > max) {
          expect(error?.reasonCode).toBe(ReasonCode.PacketTooLarge);
          expect(buffered).toBe(0);
        } else {
          expect(error).toBeUndefined();
        }
      }),
    );
  });
});
