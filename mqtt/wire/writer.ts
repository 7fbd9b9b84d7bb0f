import { writeUtf8 } from "./utf8.ts";

/** Room left before the body for the fixed header: one type byte and four length bytes. */
const HEADER_ROOM = 5;

/**
 * Encoded packets are carved out of shared 64 KiB slabs, as Node's Buffer pool
 * does: allocating a fresh ArrayBuffer per packet costs more than encoding it.
 * So an encoded packet is a view that may share its ArrayBuffer with others:
 * send or copy it, never transfer its buffer. Large packets get their own.
 */
const SLAB_SIZE = 64 * 1024;
const SLAB_MAX_REQUEST = SLAB_SIZE / 8;
let slab = new ArrayBuffer(SLAB_SIZE);
let slabUsed = 0;

function allocate(n: number): Uint8Array {
  if (n > SLAB_MAX_REQUEST) return new Uint8Array(n);
  if (slabUsed + n > SLAB_SIZE) {
    slab = new ArrayBuffer(SLAB_SIZE);
    slabUsed = 0;
  }
  const view = new Uint8Array(slab, slabUsed, n);
  slabUsed += n;
  return view;
}

/** Gives back the unused tail of the latest allocation, when it is still the latest. */
function trim(buf: Uint8Array, used: number): void {
  if (buf.buffer === slab && buf.byteOffset + buf.length === slabUsed) slabUsed = buf.byteOffset + used;
}

/** Writes a Variable Byte Integer (section 1.5.5) at `p`; returns the new position. */
function putVarint(buf: Uint8Array, p: number, v: number): number {
  do {
    let b = v % 128;
    v = Math.floor(v / 128);
    if (v > 0) b |= 0x80;
    buf[p++] = b;
  } while (v > 0);
  return p;
}

export function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : 4;
}

/**
 * Writes one packet. The body is written first, after room for the fixed header;
 * `finish` then puts the header right before the body, so the remaining length is
 * known without a separate measuring pass over the packet.
 */
export class Writer {
  buf: Uint8Array;
  pos: number;

  constructor(bodyEstimate: number) {
    this.buf = allocate(HEADER_ROOM + bodyEstimate);
    this.pos = HEADER_ROOM;
  }

  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const grown = allocate(Math.max(this.buf.length * 2, this.pos + n));
    grown.set(this.buf.subarray(0, this.pos));
    this.buf = grown;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  u16(v: number): void {
    this.ensure(2);
    this.buf[this.pos++] = v >>> 8;
    this.buf[this.pos++] = v & 0xff;
  }

  u32(v: number): void {
    this.ensure(4);
    this.buf[this.pos++] = v >>> 24;
    this.buf[this.pos++] = (v >>> 16) & 0xff;
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
  }

  varint(v: number): void {
    this.ensure(4);
    this.pos = putVarint(this.buf, this.pos, v);
  }

  /** UTF-8 Encoded String (section 1.5.4): two-byte length, then bytes. */
  utf8(s: string): void {
    // An ASCII string is as long in bytes as in UTF-16 units; measure only otherwise.
    const maxLen = s.length * 3;
    this.ensure(2 + maxLen);
    const start = this.pos + 2;
    const end = writeUtf8(this.buf, start, s);
    const len = end - start;
    // 1.5.4: a UTF-8 string is at most 65,535 bytes; a longer one cannot be framed.
    if (len > 0xffff) throw new RangeError(`a UTF-8 string of ${len} bytes does not fit MQTT's 65,535`);
    this.buf[this.pos] = len >>> 8;
    this.buf[this.pos + 1] = len & 0xff;
    this.pos = end;
  }

  binary(b: Uint8Array): void {
    // 1.5.6: Binary Data is at most 65,535 bytes.
    if (b.length > 0xffff)
      throw new RangeError(`binary data of ${b.length} bytes does not fit MQTT's 65,535`);
    this.u16(b.length);
    this.bytes(b);
  }

  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /**
   * Writes a section whose byte length must precede it as a Variable Byte Integer
   * (the 5.0 property block). Writes the section, then moves it if the length took
   * more than the one byte reserved for it.
   */
  lengthPrefixed(write: () => void): void {
    this.ensure(1);
    const lenAt = this.pos;
    this.pos += 1;
    write();
    const len = this.pos - lenAt - 1;
    const extra = varintSize(len) - 1;
    if (extra > 0) {
      this.ensure(extra);
      this.buf.copyWithin(lenAt + 1 + extra, lenAt + 1, this.pos);
      this.pos += extra;
    }
    putVarint(this.buf, lenAt, len);
  }

  /** Puts the fixed header before the body and returns the whole packet. */
  finish(firstByte: number): Uint8Array {
    const len = this.pos - HEADER_ROOM;
    const start = HEADER_ROOM - 1 - varintSize(len);
    this.buf[start] = firstByte;
    putVarint(this.buf, start + 1, len);
    trim(this.buf, this.pos);
    return this.buf.subarray(start, this.pos);
  }
}
