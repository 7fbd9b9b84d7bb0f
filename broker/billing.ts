/**
 * The billable operations: every request to a gateway or shard (counted where it
 * arrives, the stats calls of $SYS and the API included) and to a session (counted
 * by its caller), WebSocket messages in, the rows written (each storage alarm set
 * is billed as one), sessions' as they report them with each answer (a session's
 * work after its last answer, such as an expiry, is not counted), and log lines.
 */
export interface Billing {
  /** Durable Object requests: upgrades, alarms and calls between objects. */
  requests: number;
  /** Incoming WebSocket messages (billed 20 to one request). */
  wsMessagesIn: number;
  /** SQLite rows written, each storage alarm set among them. */
  rowsWritten: number;
  /** Log lines written to Workers Logs (invocation logs are off, see wrangler.toml). */
  logLines: number;
}
