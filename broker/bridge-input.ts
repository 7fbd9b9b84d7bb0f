/**
 * What a bridge reads from its remote broker (README, Bridges): packets decoded
 * with MAX_PACKET_SIZE as the bound (a header announcing more ends the
 * connection before any of its body is buffered), and each PUBLISH checked as
 * the HTTP API checks a message (foreign-publish.ts) once its topic is mapped to
 * the local side. The remote broker, and anyone allowed to publish there under
 * the bridged prefix, is not trusted to stay within this broker's rules.
 */
import { type Packet, type PublishPacket, StreamDecoder, topicMatches } from "../mqtt/index.ts";
import { type BridgeConfig, type BridgeTopic, mapTopic } from "./bridges.ts";
import type { BrokerConfig } from "./config.ts";
import { foreignMessageProblem } from "./foreign-publish.ts";

/** A PUBLISH from the remote broker: to publish here on `topic` (by `line`), or why not (dropped, counted). */
export type Inbound =
  | { ok: true; line: BridgeTopic; topic: string }
  | { ok: false; problem: string }
  /** No `in` line takes it (acknowledged, and nothing else). */
  | { ok: false; problem: null };

export class BridgeInput {
  private readonly config: BrokerConfig;
  private readonly bridge: BridgeConfig;
  private readonly decoder: StreamDecoder;

  constructor(config: BrokerConfig, bridge: BridgeConfig) {
    this.config = config;
    this.bridge = bridge;
    this.decoder = new StreamDecoder({
      version: bridge.protocolVersion,
      maxPacketSize: config.maxPacketSize,
    });
  }

  /** Bytes not decoded yet (at most one packet's worth, MAX_PACKET_SIZE). */
  get buffered(): number {
    return this.decoder.buffered;
  }

  /** The packets `chunk` completes; `error` once the stream is broken (the connection must end). */
  push(chunk: Uint8Array): { packets: Packet[]; error?: string } {
    const { packets, error } = this.decoder.push(chunk);
    return error === undefined ? { packets } : { packets, error: error.message };
  }

  /** Where a PUBLISH from the remote broker goes here, checked as the HTTP API checks a message. */
  inbound(p: PublishPacket): Inbound {
    const line = this.bridge.topics.find(
      (t) => t.direction !== "out" && topicMatches(`${t.remotePrefix}${t.pattern}`, p.topic),
    );
    const topic = line === undefined ? undefined : mapTopic(p.topic, line.remotePrefix, line.localPrefix);
    if (line === undefined || topic === undefined) return { ok: false, problem: null };
    const problem = foreignMessageProblem(this.config, topic, p.payload);
    if (problem !== null) return { ok: false, problem: problem.problem };
    return { ok: true, line, topic };
  }
}
