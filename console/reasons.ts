/** MQTT reason codes in plain words, for the console's messages. */
const WORDS: Record<number, string> = {
  128: "the broker refused it (unspecified error)",
  129: "the broker received a malformed packet",
  130: "protocol error",
  132: "this protocol version is not supported",
  133: "the client id is not accepted",
  134: "wrong user name or password",
  135: "not authorized",
  136: "the server is unavailable",
  137: "the server is busy",
  139: "the server is shutting down",
  140: "unknown authentication method",
  141: "keep-alive timeout: nothing was heard from this client in time",
  142: "another connection with the same client id took over this session",
  143: "the topic filter is not valid",
  144: "the topic name is not valid",
  147: "too many unacknowledged messages",
  148: "topic alias not valid",
  149: "packet too large",
  150: "publishing too fast",
  151: "quota exceeded",
  152: "disconnected by an administrator",
  153: "the payload is not valid for its format",
  158: "shared subscriptions are not supported",
};

export function describeReason(code: number, fallback: string): string {
  if (code === 0) return fallback || "normal";
  const words = WORDS[code];
  return words === undefined
    ? `${fallback} (reason 0x${code.toString(16)})`
    : `${words} (0x${code.toString(16)})`;
}
