/**
 * bench/results.md is made of sections, one per part of the benchmark (the broker
 * comparison, real clients, overload, reconnect storms), each between markers, so
 * that a run of one part (`npm run bench -- --clients`) replaces its own section and
 * keeps the others. Each section says when and where it was measured.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { storage } from "./targets.ts";

export const RESULTS = join(import.meta.dirname, "../results.md");
export const QUICK_RESULTS = join(import.meta.dirname, "../results-quick.md");

const begin = (id: string) => `<!-- section ${id} -->`;
const end = (id: string) => `<!-- /section ${id} -->`;

/** Order of the sections in the file (`floor` is written by hand from `npm run bench:floor`'s output: kept). */
const ORDER = ["brokers", "clients", "overload", "storms", "floor"];

/** Replaces (or adds) section `id` of `file`, keeping the others. */
export function writeSection(file: string, id: string, markdown: string): void {
  const text = existsSync(file) ? readFileSync(file, "utf8") : "";
  const sections = new Map<string, string>();
  for (const known of ORDER) {
    const at = text.indexOf(begin(known));
    const stop = text.indexOf(end(known));
    if (at >= 0 && stop > at) sections.set(known, text.slice(at + begin(known).length, stop).trim());
  }
  sections.set(id, markdown.trim());
  const body = ORDER.filter((k) => sections.has(k))
    .map((k) => `${begin(k)}\n${sections.get(k)}\n${end(k)}`)
    .join("\n\n");
  writeFileSync(file, `# Load benchmark\n\n${body}\n`);
}

function version(cmd: string, args: string[]): string {
  try {
    return (
      execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })
        .split("\n")[0]
        ?.trim() ?? "?"
    );
  } catch (err) {
    return String((err as { stdout?: string }).stdout ?? "?").split("\n")[0] ?? "?";
  }
}

export function pkg(name: string): string {
  return (
    JSON.parse(
      readFileSync(join(import.meta.dirname, "../../node_modules", name, "package.json"), "utf8"),
    ) as {
      version: string;
    }
  ).version;
}

/** The commit measured (and whether the tree had changes). */
export function commit(): string {
  const sha = version("git", ["rev-parse", "--short", "HEAD"]);
  const dirty = version("git", ["status", "--porcelain", "--untracked-files=no"]) === "" ? "" : " + changes";
  return `${sha}${dirty}`;
}

/** Date, machine, versions: the lines every section starts with. */
export function machine(extra: string[] = [], quick = false): string {
  return [
    `- date: ${new Date().toISOString()}${quick ? " (quick run: small sizes)" : ""}; commit ${commit()}`,
    `- machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
    `- node ${process.version}; wrangler ${pkg("wrangler")} (workerd ${pkg("workerd")})`,
    storage === "tmpfs"
      ? "- Nimbus's local SQLite files on tmpfs (`-- --disk`: on disk)"
      : "- Nimbus's local SQLite files on disk: every commit waits for an fsync",
    ...extra,
  ].join("\n");
}

export const mosquittoVersion = () => version("mosquitto", ["-h"]);
export const pahoVersion = () =>
  version(process.env.PAHO_PYTHON ?? "/usr/bin/python3", [
    "-c",
    "import paho.mqtt; print(paho.mqtt.__version__)",
  ]);
export const chromiumVersion = () => version(process.env.CHROMIUM_PATH ?? "/usr/bin/chromium", ["--version"]);

/** A markdown table. */
export function table(header: string[], rows: string[][]): string {
  return [
    `| ${header.join(" | ")} |`,
    `| ${header.map(() => "---").join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

export const fixed = (x: number, digits = 2) => (Number.isFinite(x) ? x.toFixed(digits) : "–");
export const money = (x: number) =>
  Number.isFinite(x)
    ? `$${x.toLocaleString("en-US", { minimumFractionDigits: x < 1 ? 3 : 2, maximumFractionDigits: x < 1 ? 3 : 2 })}`
    : "–";
export const int = (x: number) => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "–");
