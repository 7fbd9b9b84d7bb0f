/**
 * A QoS 0 PUBLISH read in place, without decoding it (section 3.3): for a receiver
 * that drops it anyway (a client over its rate), all it must know is that the
 * packet is a plain QoS 0 PUBLISH and how long its topic and payload are. Nothing
 * is allocated. Only a packet whose decoding could not fail and that carries no
 * property qualifies: anything else (a 5.0 Topic Alias to apply, a topic that is
 * not plain ASCII, DUP set, an empty topic) returns -1 and is decoded in full, so
 * that it is refused, or its alias set, exactly as a decoded one is.
 */

/** Whether a packet's first byte is a PUBLISH at QoS 0 without DUP (MQTT-3.3.1-2), RETAIN either way. */
export function isPlainQos0(first: number): boolean {
  return (first & 0xfe) === 0x30;
}

/**
 * Where the payload of the QoS 0 PUBLISH in `buf[start, end)` begins (`headerLen`:
 * its fixed header's length), or -1 when it must be decoded. The topic is
 * `end - payload` bytes shorter than the packet's variable header and payload:
 * its length is `buf[start + headerLen] << 8 | buf[start + headerLen + 1]`.
 */
export function plainQos0Payload(
  buf: Uint8Array,
  start: number,
  headerLen: number,
  end: number,
  version: number,
): number {
  if (!isPlainQos0(buf[start] as number)) return -1;
  const at = start + headerLen;
  if (at + 2 > end) return -1;
  const topicBytes = ((buf[at] as number) << 8) | (buf[at + 1] as number);
  const topicEnd = at + 2 + topicBytes;
  // 5.0: one byte of Property Length, 0: no property (no Topic Alias to apply).
  const payload = version === 5 ? topicEnd + 1 : topicEnd;
  if (topicBytes === 0 || payload > end) return -1;
  if (version === 5 && buf[topicEnd] !== 0) return -1;
  // Plain ASCII without U+0000 is well-formed UTF-8 (MQTT-1.5.4-1, MQTT-1.5.4-2); anything else is checked by decoding.
  for (let i = at + 2; i < topicEnd; i++) {
    const b = buf[i] as number;
    if (b === 0 || b >= 0x80) return -1;
  }
  return payload;
}
