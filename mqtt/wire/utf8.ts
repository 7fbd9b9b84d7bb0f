import { malformed } from "../errors.ts";

// ignoreBOM: a leading 0xEF 0xBB 0xBF must not be stripped (MQTT-1.5.4-3, MQTT-1.5.3-3).
// fatal: ill-formed sequences, including encoded surrogates, are refused (MQTT-1.5.4-1).
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const encoder = new TextEncoder();

/**
 * Decodes an MQTT UTF-8 string. Short ASCII strings (most topics and client ids)
 * take a loop with no call into TextDecoder.
 */
export function decodeUtf8(buf: Uint8Array, start: number, end: number): string {
  if (end - start <= 64) {
    let s = "";
    let i = start;
    for (; i < end; i++) {
      const b = buf[i] as number;
      if (b >= 0x80) break;
      if (b === 0) malformed("string contains U+0000 (MQTT-1.5.4-2)");
      s += String.fromCharCode(b);
    }
    if (i === end) return s;
  }
  if (buf.subarray(start, end).includes(0)) malformed("string contains U+0000 (MQTT-1.5.4-2)");
  try {
    return strictDecoder.decode(buf.subarray(start, end));
  } catch {
    return malformed("string is not well-formed UTF-8 (MQTT-1.5.4-1)");
  }
}

/** Number of bytes `s` takes in UTF-8. Lone surrogates count as U+FFFD (3 bytes). */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      n += 1;
    } else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2; // four bytes for two UTF-16 units
        i++;
      } else {
        n += 2;
      }
    } else {
      n += 2;
    }
  }
  return n;
}

/** Writes `s` as UTF-8 at `pos`; returns the new position. `buf` must have room. */
export function writeUtf8(buf: Uint8Array, pos: number, s: string): number {
  if (s.length > 32) return pos + encoder.encodeInto(s, buf.subarray(pos)).written;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      buf[pos++] = c;
    } else {
      return pos + encoder.encodeInto(s.slice(i), buf.subarray(pos)).written;
    }
  }
  return pos;
}

/** Whether `bytes` is well-formed UTF-8 (for Payload Format Indicator 1, 5.0 3.3.2.3.2). */
export function isWellFormedUtf8(bytes: Uint8Array): boolean {
  try {
    strictDecoder.decode(bytes);
    return true;
  } catch {
    return false;
  }
}
