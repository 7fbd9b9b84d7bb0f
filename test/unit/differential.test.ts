/**
 * Differential property tests against mqtt-packet, the codec MQTT.js uses: random
 * valid packets encoded by Nimbus decode with mqtt-packet to the same packet, and
 * packets encoded by mqtt-packet decode with Nimbus to the same packet, in 3.1,
 * 3.1.1 and 5.0.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodePacket, encode, isDecodeError, type Packet } from "../../mqtt/index.ts";
import { anyPacket, versions } from "../support/arbitraries.ts";
import { fromMp, mpDecode, mpEncode, normalize } from "../support/mqtt-packet-oracle.ts";

const RUNS = 400;

const isShortAuth = (p: Packet) =>
  p.type === "auth" &&
  p.reasonCode === 0 &&
  (p.properties === undefined || Object.keys(p.properties).length === 0);

describe.each(versions)("differential against mqtt-packet, protocol level %i", (version) => {
  it("Nimbus encodes, mqtt-packet decodes the same packet", () => {
    fc.assert(
      fc.property(anyPacket(version), (packet) => {
        if (isShortAuth(packet)) {
          // 5.0 3.15.2.1: AUTH may leave out Reason Code 0x00 and empty properties,
          // and we do; mqtt-packet refuses that form ("Invalid auth reason code").
          expect([...encode(packet, version)]).toEqual([0xf0, 0x00]);
          return;
        }
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
