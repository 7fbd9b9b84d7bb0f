import { malformed } from "../errors.ts";
import { decodeUtf8 } from "./utf8.ts";

/**
 * Reads the MQTT data types (section 1.5) from one packet's bytes. Every read is
 * bounds-checked against `end`, so no input makes it read past its packet.
 */
export class Reader {
  readonly buf: Uint8Array;
  pos: number;
  readonly end: number;

  constructor(buf: Uint8Array, pos: number, end: number) {
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number, what: string): void {
    if (this.end - this.pos < n) malformed(`packet ends inside ${what}`);
  }

  u8(what = "a byte"): number {
    this.need(1, what);
    return this.buf[this.pos++] as number;
  }

  u16(what = "a two-byte integer"): number {
    this.need(2, what);
    const b = this.buf;
    const v = ((b[this.pos] as number) << 8) | (b[this.pos + 1] as number);
    this.pos += 2;
    return v;
  }

  u32(what = "a four-byte integer"): number {
    this.need(4, what);
    const b = this.buf;
    const p = this.pos;
    const v =
      (b[p] as number) * 0x1000000 +
      (((b[p + 1] as number) << 16) | ((b[p + 2] as number) << 8) | (b[p + 3] as number));
    this.pos += 4;
    return v;
  }

  /** Variable Byte Integer (section 1.5.5, 5.0 only): at most four bytes, and the fewest (MQTT-1.5.5-1). */
  varint(what = "a variable byte integer"): number {
    let value = 0;
    let multiplier = 1;
    for (let i = 0; i < 4; i++) {
      const b = this.u8(what);
      value += (b & 0x7f) * multiplier;
      if ((b & 0x80) === 0) {
        // A last byte of 0 after others adds nothing: the same value fits in fewer bytes.
        if (i > 0 && b === 0) return malformed(`${what} is not encoded in the fewest bytes (MQTT-1.5.5-1)`);
        return value;
      }
      multiplier *= 128;
    }
    return malformed(`${what} is longer than four bytes`);
  }

  utf8(what = "a UTF-8 string"): string {
    const len = this.u16(what);
    this.need(len, what);
    const s = decodeUtf8(this.buf, this.pos, this.pos + len);
    this.pos += len;
    return s;
  }

  /** Binary Data (section 1.5.6): two-byte length, then bytes. A view, not a copy. */
  binary(what = "binary data"): Uint8Array {
    const len = this.u16(what);
    this.need(len, what);
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return v;
  }

  /** The rest of the packet, as a view. */
  rest(): Uint8Array {
    const v = this.buf.subarray(this.pos, this.end);
    this.pos = this.end;
    return v;
  }

  /** Every packet must be consumed exactly: trailing bytes are malformed. */
  done(what: string): void {
    if (this.pos !== this.end) malformed(`${this.end - this.pos} unexpected bytes at end of ${what}`);
  }
}
