/** A tiny benchmark harness: warm up, then time batches until a time budget is spent. */
import { performance } from "node:perf_hooks";

export interface Measurement {
  opsPerSec: number;
}

/** Runs `fn` repeatedly for about `ms` milliseconds after a warm-up; returns ops/s. */
export function measure(fn: () => void, ms = 400): Measurement {
  const warmUntil = performance.now() + ms / 4;
  while (performance.now() < warmUntil) for (let i = 0; i < 100; i++) fn();
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < 100; i++) fn();
    ops += 100;
    now = performance.now();
  }
  return { opsPerSec: (ops / (now - start)) * 1000 };
}

export function formatRate(opsPerSec: number): string {
  if (opsPerSec >= 1e6) return `${(opsPerSec / 1e6).toFixed(2)} M/s`;
  if (opsPerSec >= 1e3) return `${(opsPerSec / 1e3).toFixed(1)} k/s`;
  return `${opsPerSec.toFixed(1)} /s`;
}

/** Prints a markdown table. */
export function printTable(header: string[], rows: string[][]): string {
  const lines = [`| ${header.join(" | ")} |`, `| ${header.map(() => "---").join(" | ")} |`];
  for (const r of rows) lines.push(`| ${r.join(" | ")} |`);
  const text = lines.join("\n");
  console.log(text);
  return text;
}
