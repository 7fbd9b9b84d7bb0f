/**
 * Decoder validation: each refusal is a typed DecodeError carrying the 5.0 reason
 * code, and each test names the conformance statement it checks.
 */
import { describe, expect, it } from "vitest";
import {
  type DecodeError,
  decodePacket,
  isDecodeError,
  type ProtocolVersion,
  ReasonCode,
} from "../../mqtt/index.ts";
import { hex } from "../support/bytes.ts";

function refusal(bytes: string, version: ProtocolVersion): DecodeError {
  const result = decodePacket(hex(bytes), version);
  if (!isDecodeError(result)) throw new Error(`expected a refusal, got ${JSON.stringify(result)}`);
  return result;
}

const MALFORMED = ReasonCode.MalformedPacket;
const PROTOCOL = ReasonCode.ProtocolError;

describe("fixed header", () => {
  it.each([
    ["PUBACK with flags 0001", "41 02 00 01"],
    ["PUBREL with flags 0000", "60 02 00 01"],
    ["SUBSCRIBE with flags 0000", "80 06 00 01 00 01 61 00"],
    ["UNSUBSCRIBE with flags 0000", "a0 05 00 01 00 01 61"],
    ["PINGREQ with flags 0001", "c1 00"],
    ["CONNACK with flags 1000", "28 02 00 00"],
  ])("refuses reserved flag bits: %s (MQTT-2.2.2-1, MQTT-2.2.2-2, 5.0 MQTT-2.1.3-1)", (_name, bytes) => {
    expect(refusal(bytes, 4).reasonCode).toBe(MALFORMED);
    expect(refusal(bytes, 5).reasonCode).toBe(MALFORMED);
  });

  it("refuses packet type 0 (reserved)", () => {
    expect(refusal("00 00", 4).reasonCode).toBe(MALFORMED);
  });

  it("refuses AUTH (type 15) before 5.0, where it is reserved", () => {
    expect(refusal("f0 00", 4).reasonCode).toBe(MALFORMED);
    expect(decodePacket(hex("f0 00"), 5)).toEqual({ type: "auth", reasonCode: 0 });
  });

  it("refuses a remaining length longer than four bytes (2.2.3, 1.5.5)", () => {
    expect(refusal("30 ff ff ff ff 01", 5).reasonCode).toBe(MALFORMED);
  });

  it("5.0 refuses a Variable Byte Integer not in the fewest bytes, as Remaining Length and in properties (MQTT-1.5.5-1); 3.1.1, which does not require it, accepts the length", () => {
    // PINGREQ with Remaining Length 0 in two bytes, and in four.
    expect(refusal("c0 80 00", 5)).toMatchObject({
      reasonCode: MALFORMED,
      message: expect.stringContaining("MQTT-1.5.5-1"),
    });
    expect(refusal("c0 80 80 80 00", 5).reasonCode).toBe(MALFORMED);
    expect(decodePacket(hex("c0 80 00"), 4)).toEqual({ type: "pingreq" });
    // 127 in two bytes (ff 00) is overlong; 128 in two (80 01) is the fewest.
    expect(refusal(`30 ff 00${" 00".repeat(127)}`, 5).reasonCode).toBe(MALFORMED);
    expect(decodePacket(hex(`30 80 01 00 01 74 00${" 00".repeat(124)}`), 5)).toMatchObject({
      type: "publish",
      topic: "t",
    });
    // PUBLISH "t" whose Property Length 0 takes two bytes.
    expect(refusal("30 06 00 01 74 80 00 78", 5)).toMatchObject({
      reasonCode: MALFORMED,
      message: expect.stringContaining("MQTT-1.5.5-1"),
    });
    expect(decodePacket(hex("30 05 00 01 74 00 78"), 5)).toMatchObject({ type: "publish", topic: "t" });
  });

  it("refuses trailing bytes after a complete packet body", () => {
    expect(refusal("c0 01 00", 4).reasonCode).toBe(MALFORMED);
    expect(refusal("40 03 00 01 00", 4).reasonCode).toBe(MALFORMED);
  });
});

describe("UTF-8 strings", () => {
  it("refuses ill-formed UTF-8 (MQTT-1.5.3-1, 5.0 MQTT-1.5.4-1)", () => {
    // topic "\xc3\x28" is an invalid two-byte sequence
    expect(refusal("30 05 00 02 c3 28 78", 4).reasonCode).toBe(MALFORMED);
    expect(refusal("30 06 00 02 c3 28 00 78", 5).reasonCode).toBe(MALFORMED);
  });

  it("refuses encoded UTF-16 surrogates U+D800..U+DFFF (MQTT-1.5.3-1, 5.0 MQTT-1.5.4-1)", () => {
    expect(refusal("30 06 00 03 ed a0 80 78", 4).reasonCode).toBe(MALFORMED);
  });

  it("refuses U+0000 in a string (MQTT-1.5.3-2, 5.0 MQTT-1.5.4-2)", () => {
    expect(refusal("30 06 00 03 61 00 62 78", 4).reasonCode).toBe(MALFORMED);
    // also past the ASCII fast path: a multi-byte string with a NUL
    expect(refusal("30 07 00 04 c3 a9 00 62 78", 4).reasonCode).toBe(MALFORMED);
  });

  it("keeps a leading BOM, never strips it (MQTT-1.5.3-3, 5.0 MQTT-1.5.4-3)", () => {
    const p = decodePacket(hex("30 06 00 03 ef bb bf 78"), 4);
    expect(p).toMatchObject({ type: "publish", topic: "\ufeff" });
  });

  it("decodes multi-byte UTF-8 topics", () => {
    const p = decodePacket(hex("30 08 00 05 c3 a9 f0 9f 98 78"), 4);
    expect(isDecodeError(p)).toBe(true); // truncated 4-byte sequence
    const q = decodePacket(hex("30 09 00 06 c3 a9 f0 9f 98 80 78"), 4);
    expect(q).toMatchObject({ topic: "é😀" });
  });
});

describe("packet identifiers", () => {
  it("refuses packet identifier 0 in PUBLISH QoS 1 (MQTT-2.3.1-1, 5.0 MQTT-2.2.1-3)", () => {
    expect(refusal("32 05 00 01 74 00 00", 4).reasonCode).toBe(MALFORMED);
  });
  it("refuses packet identifier 0 in SUBSCRIBE (MQTT-2.3.1-1)", () => {
    expect(refusal("82 06 00 00 00 01 61 00", 4).reasonCode).toBe(MALFORMED);
  });
  it("refuses packet identifier 0 in UNSUBSCRIBE (MQTT-2.3.1-1)", () => {
    expect(refusal("a2 05 00 00 00 01 61", 4).reasonCode).toBe(MALFORMED);
  });
  it("refuses packet identifier 0 in PUBACK/PUBREL", () => {
    expect(refusal("40 02 00 00", 4).reasonCode).toBe(MALFORMED);
    expect(refusal("62 02 00 00", 5).reasonCode).toBe(MALFORMED);
  });
});

describe("PUBLISH", () => {
  it("refuses QoS 3 (MQTT-3.3.1-4)", () => {
    expect(refusal("36 05 00 01 74 00 01", 4).reasonCode).toBe(MALFORMED);
    expect(refusal("36 06 00 01 74 00 01 00", 5).reasonCode).toBe(MALFORMED);
  });
  it("refuses DUP on QoS 0 (MQTT-3.3.1-2)", () => {
    expect(refusal("38 03 00 01 74", 4).reasonCode).toBe(MALFORMED);
  });
});

describe("SUBSCRIBE and UNSUBSCRIBE", () => {
  it("refuses SUBSCRIBE with no topic filter (MQTT-3.8.3-3, 5.0 MQTT-3.8.3-2)", () => {
    expect(refusal("82 02 00 01", 4).reasonCode).toBe(PROTOCOL);
    expect(refusal("82 03 00 01 00", 5).reasonCode).toBe(PROTOCOL);
  });
  it("refuses UNSUBSCRIBE with no topic filter (MQTT-3.10.3-2)", () => {
    expect(refusal("a2 02 00 01", 4).reasonCode).toBe(PROTOCOL);
    expect(refusal("a2 03 00 01 00", 5).reasonCode).toBe(PROTOCOL);
  });
  it("refuses a requested QoS of 3 (MQTT-3.8.3-4)", () => {
    expect(refusal("82 06 00 01 00 01 61 03", 4).reasonCode).toBe(MALFORMED);
    expect(refusal("82 07 00 01 00 00 01 61 03", 5).reasonCode).toBe(MALFORMED);
  });
  it("refuses reserved subscription option bits (MQTT-3.8.3-4, 5.0 MQTT-3.8.3-5)", () => {
    expect(refusal("82 06 00 01 00 01 61 04", 4).reasonCode).toBe(MALFORMED);
    expect(refusal("82 07 00 01 00 00 01 61 40", 5).reasonCode).toBe(MALFORMED);
  });
  it("refuses Retain Handling 3 (5.0 3.8.3.1)", () => {
    expect(refusal("82 07 00 01 00 00 01 61 30", 5).reasonCode).toBe(PROTOCOL);
  });
});

describe("CONNECT", () => {
  it("refuses an unknown protocol name with 0x84 (MQTT-3.1.2-1)", () => {
    expect(refusal("10 0c 00 04 4d 51 54 58 04 02 00 3c 00 00", 4).reasonCode).toBe(
      ReasonCode.UnsupportedProtocolVersion,
    );
  });
  it("refuses an unsupported protocol level with 0x84 (MQTT-3.1.2-2)", () => {
    expect(refusal("10 0c 00 04 4d 51 54 54 06 02 00 3c 00 00", 4).reasonCode).toBe(
      ReasonCode.UnsupportedProtocolVersion,
    );
    // level 3 is only valid with the 3.1 name "MQIsdp"
    expect(refusal("10 0c 00 04 4d 51 54 54 03 02 00 3c 00 00", 4).reasonCode).toBe(
      ReasonCode.UnsupportedProtocolVersion,
    );
  });
  it("refuses the reserved connect flag (MQTT-3.1.2-3)", () => {
    expect(refusal("10 0c 00 04 4d 51 54 54 04 03 00 3c 00 00", 4).reasonCode).toBe(MALFORMED);
  });
  it("refuses will QoS 3 (MQTT-3.1.2-14, 5.0 MQTT-3.1.2-12)", () => {
    expect(refusal("10 12 00 04 4d 51 54 54 04 1e 00 3c 00 00 00 01 77 00 00", 4).reasonCode).toBe(MALFORMED);
  });
  it("refuses will QoS or retain without the will flag (MQTT-3.1.2-11, MQTT-3.1.2-13)", () => {
    expect(refusal("10 0c 00 04 4d 51 54 54 04 0a 00 3c 00 00", 4).reasonCode).toBe(MALFORMED);
    expect(refusal("10 0c 00 04 4d 51 54 54 04 22 00 3c 00 00", 4).reasonCode).toBe(MALFORMED);
  });
  it("refuses a password without a user name in 3.1.1 (MQTT-3.1.2-22), allows it in 5.0", () => {
    expect(refusal("10 0f 00 04 4d 51 54 54 04 42 00 3c 00 00 00 01 70", 4).reasonCode).toBe(MALFORMED);
    expect(decodePacket(hex("10 10 00 04 4d 51 54 54 05 42 00 3c 00 00 00 00 01 70"), 5)).toMatchObject({
      password: hex("70"),
    });
  });
});

describe("5.0 properties", () => {
  it("refuses a property repeated where that is not allowed (2.2.2.2)", () => {
    // PUBLISH with Topic Alias twice
    expect(refusal("30 0b 00 01 74 06 23 00 01 23 00 02 78", 5).reasonCode).toBe(PROTOCOL);
    // SUBSCRIBE with two Subscription Identifiers (3.8.2.1.2)
    expect(refusal("82 0b 00 01 04 0b 01 0b 02 00 01 61 00", 5).reasonCode).toBe(PROTOCOL);
  });
  it("allows User Property and PUBLISH Subscription Identifier to repeat", () => {
    expect(isDecodeError(decodePacket(hex("30 09 00 01 74 04 0b 01 0b 02 78"), 5))).toBe(false);
  });
  it("refuses a property not valid for the packet type as malformed (2.2.2.2)", () => {
    // Session Expiry Interval inside PUBLISH
    expect(refusal("30 0a 00 01 74 05 11 00 00 00 01", 5).reasonCode).toBe(MALFORMED);
  });
  it("refuses an unknown property identifier", () => {
    expect(refusal("30 06 00 01 74 02 7f 00", 5).reasonCode).toBe(MALFORMED);
  });
  it("refuses a property block longer than the packet", () => {
    expect(refusal("30 05 00 01 74 09 01", 5).reasonCode).toBe(MALFORMED);
  });
  it("refuses out-of-range values as protocol errors", () => {
    // Receive Maximum 0 (3.1.2.11.3), Subscription Identifier 0 (3.8.2.1.2)
    expect(refusal("82 09 00 01 02 0b 00 00 01 61 00", 5).reasonCode).toBe(PROTOCOL);
    expect(refusal("10 10 00 04 4d 51 54 54 05 02 00 3c 03 21 00 00 00 00", 5).reasonCode).toBe(PROTOCOL);
    // Payload Format Indicator 2
    expect(refusal("30 07 00 01 74 02 01 02 78", 5).reasonCode).toBe(PROTOCOL);
  });
  it("refuses a reason code not valid for the packet", () => {
    expect(refusal("40 03 00 01 05", 5).reasonCode).toBe(PROTOCOL);
    expect(refusal("e0 01 05", 5).reasonCode).toBe(PROTOCOL);
  });
});
