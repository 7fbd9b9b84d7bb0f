/**
 * A streaming decoder: bytes in, whole packets out. Packets may be split across
 * WebSocket frames or several may share one; the remainder is kept for the next
 * chunk. A packet whose fixed header announces more than `maxPacketSize` is
 * refused before any of its body is buffered.
 */
import { decodeBody, firstByteProblem } from "./decode.ts";
import type { DecodeError } from "./errors.ts";
import { MAX_PACKET_SIZE, readHeader } from "./fixed-header.ts";
import type { Packet, ProtocolVersion } from "./packet.ts";
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

export class StreamDecoder {
  version: ProtocolVersion;
  readonly maxPacketSize: number;
  /** Bytes of a packet still being assembled: either a short header or `need` bytes. */
  private carry: Uint8Array | null = null;
  private carryLen = 0;
  /** Total size of the packet in `carry` once its header is known, else 0. */
  private need = 0;
  private failed: DecodeError | undefined;

  constructor(options: StreamDecoderOptions = {}) {
    this.maxPacketSize = options.maxPacketSize ?? MAX_PACKET_SIZE;
    this.version = options.version ?? 4;
  }

  /** Bytes held for a packet that has not fully arrived. */
  get buffered(): number {
    return this.carryLen;
  }

  push(chunk: Uint8Array): DecodeResult {
    const packets: Packet[] = [];
    if (this.failed) return { packets, error: this.failed };
    let buf = chunk;
    let pos = 0;
    if (this.carry !== null) {
      if (this.need === 0) {
        // Only a few header bytes are held: join them to the chunk and start over.
        buf = new Uint8Array(this.carryLen + chunk.length);
        buf.set(this.carry.subarray(0, this.carryLen));
        buf.set(chunk, this.carryLen);
        this.carry = null;
        this.carryLen = 0;
      } else {
        const take = Math.min(this.need - this.carryLen, chunk.length);
        this.carry.set(chunk.subarray(0, take), this.carryLen);
        this.carryLen += take;
        pos = take;
        if (this.carryLen < this.need) return { packets };
        const whole = this.carry;
        this.carry = null;
        this.carryLen = 0;
        this.need = 0;
        const error = this.emit(whole, 0, packets);
        if (error) return { packets, error };
      }
    }
    while (pos < buf.length) {
      const header = readHeader(buf, pos, this.maxPacketSize);
      if (header.kind === "incomplete") {
        this.carry = buf.slice(pos);
        this.carryLen = this.carry.length;
        break;
      }
      if (header.kind === "error") {
        this.failed = header.error;
        return { packets, error: header.error };
      }
      const problem = firstByteProblem(buf[pos] as number, this.version);
      if (problem !== undefined) {
        this.failed = {
          ok: false,
          reasonCode: ReasonCode.MalformedPacket,
          message: problem,
          packetType: (buf[pos] as number) >> 4,
        };
        return { packets, error: this.failed };
      }
      const available = buf.length - pos;
      if (available < header.total) {
        this.carry = new Uint8Array(header.total);
        this.carry.set(buf.subarray(pos));
        this.carryLen = available;
        this.need = header.total;
        break;
      }
      const error = this.emit(buf, pos, packets);
      if (error) return { packets, error };
      pos += header.total;
    }
    return { packets };
  }

  /** Decodes the whole packet at `buf[pos]`, whose header is known to be valid. */
  private emit(buf: Uint8Array, pos: number, out: Packet[]): DecodeError | undefined {
    const header = readHeader(buf, pos, this.maxPacketSize) as { headerLen: number; total: number };
    const result = decodeBody(
      buf[pos] as number,
      buf,
      pos + header.headerLen,
      pos + header.total,
      this.version,
    );
    if ("ok" in result) {
      this.failed = result;
      return result;
    }
    if (result.type === "connect") this.version = result.protocolVersion;
    out.push(result);
    return undefined;
  }
}
