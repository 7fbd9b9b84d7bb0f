/**
 * Structured log lines (one JSON object per line), readable with `wrangler tail`.
 * Never pass a password, token or payload here.
 */
export type LogLevel = "debug" | "info" | "warn" | "error";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
let threshold = RANK.info;

/** Sets the lowest level written (the LOG_LEVEL var); each object sets it as it starts. */
export function setLogLevel(level: string | undefined): void {
  threshold = RANK[(level ?? "info") as LogLevel] ?? RANK.info;
}

/**
 * Lines written since the last takeLogLines(): Workers Logs bills each one. The
 * objects of an isolate share this count; each takes it when it reports its
 * stats, so every line is counted once, by one of them.
 */
let written = 0;

export function takeLogLines(): number {
  const n = written;
  written = 0;
  return n;
}

export function log(level: LogLevel, event: string, fields: Record<string, unknown> = {}): void {
  if (RANK[level] < threshold) return;
  written++;
  const line = JSON.stringify({ level, event, ...fields });
  if (level === "error") console.error(line);
  else if (level === "warn") console.warn(line);
  else console.log(line);
}
