/**
 * Differential property tests against mqtt-packet, the codec MQTT.js uses: random
 * valid packets encoded by Nimbus decode with mqtt-packet to the same packet, and
 * packets encoded by mqtt-packet decode with Nimbus to the same packet, in 3.1,
 * 3.1.1 and 5.0.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodePacket, encode, isDecodeError } from "../../mqtt/index.ts";
import { anyPacket, versions } from "../support/arbitraries.ts";
import { fromMp, mpDecode, mpEncode, normalize } from "../support/mqtt-packet-oracle.ts";

const RUNS = 400;

describe.each(versions)("differential against mqtt-packet, protocol level %i", (version) => {
  it("Nimbus encodes, mqtt-packet decodes the same packet", () => {
    fc.assert(
      fc.property(anyPacket(version), (packet) => {
        const { packets, error } = mpDecode(encode(packet, version), version);
        expect(error).toBeUndefined();
        expect(packets).toHaveLength(1);
        expect(fromMp(packets[0]!, version)).toEqual(normalize(packet, version));
      }),
      { numRuns: RUNS },
    );
  });

  it("mqtt-packet encodes, Nimbus decodes the same packet", () => {
    fc.assert(
      fc.property(anyPacket(version), (packet) => {
        const decoded = decodePacket(mpEncode(packet, version), version);
        if (isDecodeError(decoded)) throw new Error(decoded.message);
        expect(normalize(decoded, version)).toEqual(normalize(packet, version));
      }),
      { numRuns: RUNS },
    );
  });

  it("Nimbus round-trips its own encoding", () => {
    fc.assert(
      fc.property(anyPacket(version), (packet) => {
        expect(decodePacket(encode(packet, version), version)).toEqual(packet);
      }),
      { numRuns: RUNS },
    );
  });
});
