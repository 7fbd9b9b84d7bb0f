/**
 * The 5.0 properties a message published through the HTTP API may carry, checked
 * as the MQTT decoder checks them on the wire: a property the API accepted must
 * encode for every subscriber, or it would fail inside delivery after the message
 * was stored, again at every reconnect.
 */
import { fromBase64 } from "../broker/json.ts";
import type { MessageProperties } from "../broker/message.ts";
import { validateTopicName } from "../mqtt/index.ts";
import { utf8Length } from "../mqtt/wire/utf8.ts";

/** The longest string or binary an MQTT property holds (1.5.4, 1.5.6). */
const MAX_FIELD = 65_535;
/** User properties one message may carry through the API. */
export const MAX_API_USER_PROPERTIES = 64;

export type ApiProperties =
  | { ok: true; properties: MessageProperties | undefined; messageExpiryInterval: number | undefined }
  | { ok: false; problem: string };

const KNOWN = new Set([
  "payloadFormatIndicator",
  "messageExpiryInterval",
  "contentType",
  "responseTopic",
  "correlationData",
  "userProperties",
]);

/** A string MQTT can carry: at most 65,535 bytes of UTF-8, no U+0000 (MQTT-1.5.4-2). */
function utf8String(v: unknown): v is string {
  return typeof v === "string" && utf8Length(v) <= MAX_FIELD && !v.includes("\u0000");
}

export function apiProperties(value: unknown): ApiProperties {
  if (value === undefined || value === null)
    return { ok: true, properties: undefined, messageExpiryInterval: undefined };
  if (typeof value !== "object" || Array.isArray(value))
    return { ok: false, problem: "properties must be an object" };
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!KNOWN.has(key)) return { ok: false, problem: `unknown or per-hop property ${JSON.stringify(key)}` };
  }
  const out: MessageProperties = {};
  if (v.payloadFormatIndicator !== undefined) {
    if (v.payloadFormatIndicator !== 0 && v.payloadFormatIndicator !== 1)
      return { ok: false, problem: "payloadFormatIndicator must be 0 or 1" };
    out.payloadFormatIndicator = v.payloadFormatIndicator;
  }
  let messageExpiryInterval: number | undefined;
  if (v.messageExpiryInterval !== undefined) {
    const e = v.messageExpiryInterval;
    if (typeof e !== "number" || !Number.isInteger(e) || e < 0 || e > 0xffffffff)
      return { ok: false, problem: "messageExpiryInterval must be a whole number of seconds below 2^32" };
    messageExpiryInterval = e;
  }
  if (v.contentType !== undefined) {
    if (!utf8String(v.contentType))
      return { ok: false, problem: "contentType must be a string of at most 65,535 bytes" };
    out.contentType = v.contentType;
  }
  if (v.responseTopic !== undefined) {
    if (typeof v.responseTopic !== "string") return { ok: false, problem: "responseTopic must be a string" };
    const problem = validateTopicName(v.responseTopic);
    if (problem !== null) return { ok: false, problem: `responseTopic: ${problem}` };
    out.responseTopic = v.responseTopic;
  }
  if (v.correlationData !== undefined) {
    // Binary on the wire: base64 in JSON.
    let bytes: Uint8Array;
    try {
      if (typeof v.correlationData !== "string") throw new Error();
      bytes = fromBase64(v.correlationData);
    } catch {
      return { ok: false, problem: "correlationData must be base64" };
    }
    if (bytes.length > MAX_FIELD)
      return { ok: false, problem: "correlationData is longer than 65,535 bytes" };
    out.correlationData = bytes;
  }
  if (v.userProperties !== undefined) {
    const list = v.userProperties;
    if (!Array.isArray(list) || list.length > MAX_API_USER_PROPERTIES)
      return {
        ok: false,
        problem: `userProperties must be a list of at most ${MAX_API_USER_PROPERTIES} [name, value] pairs`,
      };
    const pairs: Array<[string, string]> = [];
    for (const pair of list) {
      if (!Array.isArray(pair) || pair.length !== 2 || !utf8String(pair[0]) || !utf8String(pair[1]))
        return {
          ok: false,
          problem: "each user property is a [name, value] pair of strings up to 65,535 bytes",
        };
      pairs.push([pair[0], pair[1]]);
    }
    out.userProperties = pairs;
  }
  return { ok: true, properties: Object.keys(out).length > 0 ? out : undefined, messageExpiryInterval };
}
