/**
 * A streaming decoder: bytes in, whole packets out. Packets may be split across
 * WebSocket frames or several may share one. It is pull-based: `feed` only keeps
 * the bytes, and `next` decodes one packet when the caller is ready for it, so
 * a frame of many packets costs its bytes until they are handled, never a decoded
 * packet (or a task) for each of them at once. A packet is assembled only once
 * all its bytes have arrived, so memory follows the bytes received, never the
 * length a header announces; one announcing more than `maxPacketSize` is refused
 * before any of its body is buffered.
 */
import { decodeBody, firstByteProblem } from "./decode.ts";
import type { DecodeError } from "./errors.ts";
import { MAX_PACKET_SIZE, overlongLength, readHeader } from "./fixed-header.ts";
import { type Packet, PacketType, type ProtocolVersion } from "./packet.ts";
import { ReasonCode } from "./reason-codes.ts";

export { MAX_PACKET_SIZE };
export interface StreamDecoderOptions {
  /** Largest whole packet (fixed header included) accepted, in bytes. */
  maxPacketSize?: number;
  /** Protocol version of the connection; a decoded CONNECT sets it. */
  version?: ProtocolVersion;
}

export interface DecodeResult {
  packets: Packet[];
  /** Set when the stream is broken; no packet after it is decoded. */
  error?: DecodeError;
}

/** The longest fixed header: one type byte and four Remaining Length bytes. */
const MAX_HEADER = 5;
/**
 * Chunks shorter than this that arrive behind bytes not decoded yet are copied into
 * a buffer the decoder owns instead of kept as they came: a client sending a packet
 * a byte a frame would otherwise make the decoder hold an object (about 200 bytes)
 * per byte. The buffer starts at TAIL_FIRST bytes and doubles up to TAIL_BYTES as
 * it fills, so its room is never much more than the bytes in it: a few 1-byte
 * frames on each of a gateway's connections cannot hold 16 KiB apiece.
 */
const SMALL_CHUNK = 1024;
const TAIL_FIRST = 64;
const TAIL_BYTES = 16 * 1024;
const EMPTY = new Uint8Array(0);
/** Chunks holding less memory than this are not shrunk (a copy would cost more than it frees). */
const SHRINK_FROM = 4 * 1024;

export class StreamDecoder {
  version: ProtocolVersion;
  readonly maxPacketSize: number;
  /**
   * Bytes received and not yet decoded, oldest first, from `chunks[head]` on; that
   * one is read from `offset`. Consumed chunks are skipped by `head` and cut off now
   * and then (Array.shift copies the array: a packet in n frames would take n² steps).
   */
  private chunks: Uint8Array[] = [];
  private head = 0;
  private offset = 0;
  /** The buffer small chunks are copied into, and how much of it is used; its filled part is the last chunk. */
  private tail: Uint8Array | undefined;
  private tailUsed = 0;
  private pending = 0;
  private failed: DecodeError | undefined;
  /**
   * Asked about each whole packet lying in one received chunk before it is decoded
   * (`start`: its first byte, `headerLen`: its fixed header's length): true consumes
   * it undecoded, for a receiver that drops it anyway (a QoS 0 PUBLISH over its
   * client's rate). The packet's first byte has passed `firstByteProblem`; the
   * rest is the hook's to check, or to leave to decoding by answering false.
   */
  skip: ((buf: Uint8Array, start: number, headerLen: number, end: number) => boolean) | undefined;

  constructor(options: StreamDecoderOptions = {}) {
    this.maxPacketSize = options.maxPacketSize ?? MAX_PACKET_SIZE;
    this.version = options.version ?? 4;
  }

  /** Bytes received and not decoded yet. */
  get buffered(): number {
    return this.pending;
  }

  /** Keeps `chunk` (a view: the caller must not reuse its memory) for `next`. */
  feed(chunk: Uint8Array): void {
    if (chunk.length === 0 || this.failed) return;
    // A chunk that arrives with nothing buffered (a whole packet or more, usually) is
    // read where it lies: copying it would cost a tail buffer a frame. Only what
    // follows a partial packet is copied.
    const alone = this.pending === 0;
    this.pending += chunk.length;
    if (chunk.length >= SMALL_CHUNK || alone) {
      this.leaveTail();
      this.chunks.push(chunk);
      return;
    }
    let from = 0;
    while (from < chunk.length) {
      if (this.tail === undefined || this.tailUsed === this.tail.length) {
        const size = this.tail === undefined ? TAIL_FIRST : Math.min(2 * this.tail.length, TAIL_BYTES);
        this.tail = new Uint8Array(size);
        this.tailUsed = 0;
        this.chunks.push(this.tail.subarray(0, 0));
      }
      const take = Math.min(chunk.length - from, this.tail.length - this.tailUsed);
      this.tail.set(chunk.subarray(from, from + take), this.tailUsed);
      this.tailUsed += take;
      from += take;
      // The last chunk is the tail's filled part: a longer view of the same bytes.
      this.chunks[this.chunks.length - 1] = this.tail.subarray(0, this.tailUsed);
    }
  }

  /**
   * A large chunk goes behind the tail: the tail keeps only its bytes not decoded
   * yet, so its room left behind cannot make a client alternating 1-byte and 1 KiB
   * frames hold many times the bytes it is counted for (inbound.ts bounds those).
   */
  private leaveTail(): void {
    const tail = this.tail;
    if (tail === undefined) return;
    this.tail = undefined;
    const last = this.chunks.length - 1;
    const from = last === this.head ? this.offset : 0;
    if (from === 0 && this.tailUsed === tail.length) return;
    this.chunks[last] = tail.slice(from, this.tailUsed);
    if (last === this.head) this.offset = 0;
  }

  /**
   * Reading stops here for a while (the next packet has not all arrived, or the
   * reader holds back): the chunk being read keeps only its bytes not decoded yet
   * once they are less than half of the memory it holds, so a frame whose last byte
   * starts the next packet, or whose rest waits while decoding is held back, does
   * not keep the whole frame alive for the few bytes counted. Not done per packet:
   * a frame read through in one go is not copied at all. The tail is left alone
   * (it is small).
   */
  compact(): void {
    if (this.head >= this.chunks.length) return;
    const chunk = this.chunks[this.head] as Uint8Array;
    const memory = chunk.buffer.byteLength;
    if (memory < SHRINK_FROM || 2 * (chunk.length - this.offset) >= memory) return;
    if (this.tail !== undefined && this.head === this.chunks.length - 1) return;
    this.chunks[this.head] = chunk.slice(this.offset);
    this.offset = 0;
  }

  /** Drops every byte not decoded yet (the connection is ending). */
  discard(): void {
    this.chunks = [];
    this.head = 0;
    this.offset = 0;
    this.pending = 0;
    this.tail = undefined;
  }

  /**
   * The next whole packet (those `skip` takes are passed over); a DecodeError once
   * the stream is broken (and from then on); undefined while the next packet has
   * not fully arrived.
   */
  next(): Packet | DecodeError | undefined {
    for (;;) {
      if (this.failed) return this.failed;
      if (this.pending < 2) return this.waiting();
      const first = this.chunks[this.head] as Uint8Array;
      const inFirst = first.length - this.offset;
      // The header is read in place when the first chunk holds it, else from a copy.
      const head = inFirst >= MAX_HEADER || inFirst === this.pending ? first : this.peek(MAX_HEADER);
      const at = head === first ? this.offset : 0;
      const header = readHeader(head, at, this.maxPacketSize, this.version === 5);
      if (header.kind === "incomplete") return this.waiting();
      if (header.kind === "error") return this.fail(header.error);
      const problem = firstByteProblem(head[at] as number, this.version);
      if (problem !== undefined) {
        return this.fail({
          ok: false,
          reasonCode: ReasonCode.MalformedPacket,
          message: problem,
          packetType: (head[at] as number) >> 4,
        });
      }
      if (this.pending < header.total) return this.waiting();
      let result: Packet | DecodeError;
      if (inFirst >= header.total) {
        const pos = this.offset;
        if (this.skip?.(first, pos, header.headerLen, pos + header.total)) {
          this.consume(header.total);
          continue;
        }
        result = decodeBody(
          first[pos] as number,
          first,
          pos + header.headerLen,
          pos + header.total,
          this.version,
        );
      } else {
        // Split across frames: joined now that every byte is here.
        const whole = this.peek(header.total);
        result = decodeBody(whole[0] as number, whole, header.headerLen, header.total, this.version);
      }
      this.consume(header.total);
      if ("ok" in result) return this.fail(result);
      if (result.type === "connect") {
        this.version = result.protocolVersion;
        // Its own header was read before its version was known: 5.0 holds it to MQTT-1.5.5-1 now.
        if (this.version === 5 && header.overlong) return this.fail(overlongLength(PacketType.connect));
      }
      return result;
    }
  }

  /** The next packet has not all arrived: what is read of its chunk is let go of (compact). */
  private waiting(): undefined {
    this.compact();
    return undefined;
  }

  /** Feeds `chunk` and decodes every whole packet now available. */
  push(chunk: Uint8Array): DecodeResult {
    this.feed(chunk);
    const packets: Packet[] = [];
    for (;;) {
      const next = this.next();
      if (next === undefined) return { packets };
      if ("ok" in next) return { packets, error: next };
      packets.push(next);
    }
  }

  private fail(error: DecodeError): DecodeError {
    this.failed = error;
    this.discard();
    return error;
  }

  /** A copy of the first `n` buffered bytes (fewer if fewer are buffered). */
  private peek(n: number): Uint8Array {
    const out = new Uint8Array(Math.min(n, this.pending));
    let filled = 0;
    let from = this.offset;
    for (let i = this.head; i < this.chunks.length; i++) {
      const chunk = this.chunks[i] as Uint8Array;
      const take = Math.min(chunk.length - from, out.length - filled);
      out.set(chunk.subarray(from, from + take), filled);
      filled += take;
      from = 0;
      if (filled === out.length) break;
    }
    return out;
  }

  private consume(n: number): void {
    this.pending -= n;
    let left = n;
    while (left > 0) {
      const chunk = this.chunks[this.head] as Uint8Array;
      const inChunk = chunk.length - this.offset;
      if (left < inChunk) {
        this.offset += left;
        break;
      }
      left -= inChunk;
      // A chunk read to its end is let go of now: kept until the array is cut, a
      // frame whose last byte starts the next packet would stay whole in memory
      // while one byte of it is counted.
      this.chunks[this.head++] = EMPTY;
      this.offset = 0;
    }
    if (this.head === this.chunks.length) {
      // Everything consumed; the tail, if any, is its last chunk: start afresh.
      this.chunks = [];
      this.head = 0;
      this.tail = undefined;
      return;
    }
    if (this.head >= 64 && this.head * 2 >= this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }
}
