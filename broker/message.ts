/**
 * An application message on its way through the broker: what a shard routes, a
 * gateway delivers and a session queues. `id` is unique per accepted PUBLISH, so
 * that every store can drop a copy that reaches it twice during a handover.
 */
import type { PublishProperties, QoS, Will } from "../mqtt/index.ts";
import { parse, stringify } from "./json.ts";

/**
 * The 5.0 properties a message carries end to end (3.3.2.3); aliases and ids are
 * per hop. User Properties are [name, value] pairs, typed here as the arrays they
 * are when they cross between objects (RPC types and JSON have no tuples); the
 * codec's pair type is made again where a packet is written (`packetProperties`).
 */
export type MessageProperties = Omit<
  PublishProperties,
  "topicAlias" | "subscriptionIdentifiers" | "userProperties"
> & { userProperties?: string[][] };

/** A message's properties as a PUBLISH carries them, User Properties as the codec's pairs. */
export function packetProperties(p: MessageProperties | undefined): PublishProperties {
  if (p === undefined) return {};
  const { userProperties, ...rest } = p;
  if (userProperties === undefined) return rest;
  return {
    ...rest,
    userProperties: userProperties.map((pair): [string, string] => [pair[0] ?? "", pair[1] ?? ""]),
  };
}

export interface Message {
  id: string;
  topic: string;
  payload: Uint8Array;
  qos: QoS;
  retain: boolean;
  properties?: MessageProperties;
  /** Client id of the publisher, for No Local (5.0 3.8.3.1). */
  origin?: string;
  /** Epoch ms after which the message is dropped (5.0 Message Expiry Interval). */
  expiresAt?: number;
  /**
   * For a shared subscription (5.0 4.8.2): the one member chosen to receive it,
   * and the subscription (`$share/{group}/{filter}`) it is delivered for.
   */
  target?: { clientId: string; filter: string };
}

let counter = 0;

/** A message id unique across objects: who accepted it, when, and a local counter. */
export function newMessageId(acceptor: string): string {
  counter = (counter + 1) % 0x7fffffff;
  return `${acceptor}:${Date.now().toString(36)}:${counter.toString(36)}:${Math.floor(Math.random() * 0xffffff).toString(36)}`;
}

/**
 * The properties that travel with a message: topic alias and subscription ids are
 * per hop, and the expiry interval is kept as `expiresAt` and recomputed on sending.
 */
export function messageProperties(props: PublishProperties | undefined): MessageProperties | undefined {
  if (props === undefined) return undefined;
  const { topicAlias: _a, subscriptionIdentifiers: _s, messageExpiryInterval: _e, ...rest } = props;
  return Object.keys(rest).length === 0 ? undefined : owningBinary(rest);
}

/**
 * Correlation Data is decoded as a view into its frame, as a payload is: owned
 * here, or one byte of it would keep the whole frame (every packet in it) alive
 * while a message waits, counted as one byte (messageBytes).
 */
function owningBinary<P extends { correlationData?: Uint8Array }>(props: P): P {
  if (props.correlationData !== undefined) props.correlationData = ownedBytes(props.correlationData);
  return props;
}

/** The message a Last Will becomes, with its 5.0 properties (3.1.3.2). */
export function willMessage(clientId: string, will: Will, now = Date.now()): Message {
  const m: Message = {
    id: `will:${clientId}:${now.toString(36)}`,
    topic: will.topic,
    payload: ownedBytes(will.payload),
    qos: will.qos,
    retain: will.retain,
    origin: clientId,
  };
  const { willDelayInterval: _d, messageExpiryInterval, ...rest } = will.properties ?? {};
  if (Object.keys(rest).length > 0) m.properties = owningBinary(rest);
  if (messageExpiryInterval !== undefined) m.expiresAt = now + messageExpiryInterval * 1000;
  return m;
}

export function isExpired(m: Message, now: number): boolean {
  return m.expiresAt !== undefined && m.expiresAt <= now;
}

/** A view's bytes as an ArrayBuffer of exactly its length, for a SQLite BLOB. */
export function toBlob(bytes: Uint8Array): ArrayBuffer {
  if (
    bytes.byteOffset === 0 &&
    bytes.byteLength === bytes.buffer.byteLength &&
    bytes.buffer instanceof ArrayBuffer
  ) {
    return bytes.buffer;
  }
  return bytes.slice().buffer as ArrayBuffer;
}

/** Message fields as SQLite columns (properties as JSON). */
export type MessageRow = {
  msg_id: string;
  topic: string;
  payload: ArrayBuffer;
  qos: number;
  retain: number;
  props: string | null;
  origin: string | null;
  expires_at: number | null;
  target: string | null;
};

export function messageToRow(m: Message): MessageRow {
  return {
    msg_id: m.id,
    topic: m.topic,
    payload: toBlob(m.payload),
    qos: m.qos,
    retain: m.retain ? 1 : 0,
    props: m.properties === undefined ? null : stringify(m.properties),
    origin: m.origin ?? null,
    expires_at: m.expiresAt ?? null,
    target: m.target === undefined ? null : JSON.stringify(m.target),
  };
}

export function rowToMessage(r: MessageRow): Message {
  const m: Message = {
    id: r.msg_id,
    topic: r.topic,
    payload: new Uint8Array(r.payload),
    qos: r.qos as QoS,
    retain: r.retain === 1,
  };
  if (r.props !== null) m.properties = parse<MessageProperties>(r.props);
  if (r.origin !== null) m.origin = r.origin;
  if (r.expires_at !== null) m.expiresAt = r.expires_at;
  if (r.target !== null) m.target = JSON.parse(r.target) as Message["target"];
  return m;
}

/** The columns a message takes in every table that stores messages, and their SQL. */
export const MESSAGE_COLUMNS = "msg_id, topic, payload, qos, retain, props, origin, expires_at, target";
export const MESSAGE_PLACEHOLDERS = "?, ?, ?, ?, ?, ?, ?, ?, ?";
export const MESSAGE_COLUMN_DEFS = `msg_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  payload BLOB NOT NULL,
  qos INTEGER NOT NULL,
  retain INTEGER NOT NULL,
  props TEXT,
  origin TEXT,
  expires_at INTEGER,
  target TEXT`;

export function messageValues(r: MessageRow): SqlStorageValue[] {
  return [r.msg_id, r.topic, r.payload, r.qos, r.retain, r.props, r.origin, r.expires_at, r.target];
}

/** What Cloudflare allows a call between objects to carry, serialized. */
export const RPC_CALL_LIMIT = 32 * 2 ** 20;
/**
 * Bytes one call between objects may carry in messages: a quarter of the 32 MiB
 * Cloudflare allows for a call's arguments, leaving room for what serialization
 * adds and for the answer.
 */
export const RPC_BATCH_BYTES = 8 * 2 ** 20;
/** Messages one call between objects carries at most. */
export const RPC_BATCH_MESSAGES = 500;

/**
 * What a message weighs in a call: payload, topic (two bytes a character at
 * worst), properties, and a fixed allowance for ids and fields.
 */
export function messageBytes(m: Message): number {
  let bytes = 128 + m.payload.byteLength + 2 * m.topic.length + 2 * m.id.length;
  const p = m.properties;
  if (p !== undefined) {
    bytes += 2 * ((p.contentType?.length ?? 0) + (p.responseTopic?.length ?? 0));
    bytes += p.correlationData?.byteLength ?? 0;
    for (const [k = "", v = ""] of p.userProperties ?? []) bytes += 2 * (k.length + v.length) + 16;
  }
  return bytes;
}

/**
 * Refuses a batch of messages past RPC_CALL_LIMIT where it arrives. On Cloudflare
 * such a call never arrives (the runtime refuses it); `wrangler dev` enforces no
 * limit, so this stands in for it and a test that sends too much fails locally too.
 */
export function assertWithinCall(messages: Message[]): void {
  let bytes = 0;
  for (const m of messages) bytes += messageBytes(m);
  if (bytes > RPC_CALL_LIMIT)
    throw new RangeError(`a call of ${bytes} bytes of messages is over Cloudflare's 32 MiB`);
}

/** Batch limits for calls that carry messages. */
export const MESSAGE_BATCH = {
  maxItems: RPC_BATCH_MESSAGES,
  maxBytes: RPC_BATCH_BYTES,
  sizeOf: messageBytes,
} as const;

/**
 * A payload that owns its memory: a PUBLISH's payload is a view into its
 * WebSocket frame, and serializing a view for a call copies its whole buffer
 * (every other packet of the frame with it). Copied once here, when it is not
 * the whole buffer already.
 */
export function ownedBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}
