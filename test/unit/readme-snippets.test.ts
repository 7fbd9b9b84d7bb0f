/**
 * The README's integration snippets paste as the README says: each binding block
 * at the end of wrangler.toml, each `# under [vars]` line under its [vars] table
 * (RULES and BRIDGES of all examples merged into one array each, as the README tells
 * a reader with two targets to do). wrangler reads the result (its TOML parser and
 * configuration checks, through `wrangler types`), and so does the broker
 * (readConfig, with the bindings and the secrets the snippets create).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { readConfig } from "../../broker/config.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** The fenced blocks of the README between two headings, with their language. */
function blocks(from: string, to: string): Array<{ lang: string; text: string }> {
  const start = README.indexOf(from);
  const end = README.indexOf(to, start);
  expect(start).toBeGreaterThanOrEqual(0);
  expect(end).toBeGreaterThan(start);
  return [...README.slice(start, end).matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({
    lang: m[1] as string,
    text: m[2] as string,
  }));
}

const integrations = blocks("## Integrations", "## $SYS topics");
const toml = integrations.filter((b) => b.lang === "toml");
const atEnd = toml.filter((b) => b.text.startsWith("# at the end of wrangler.toml\n"));
const underVars = toml.filter((b) => b.text.startsWith("# under [vars]\n"));

/** `NAME = '<literal>'` lines of the [vars] blocks (TOML literal strings: taken as written). */
function varLines(): Array<[string, string]> {
  return underVars.flatMap((b) =>
    b.text
      .split("\n")
      .filter((line) => line.trim() !== "" && !line.startsWith("#"))
      .map((line): [string, string] => {
        const m = /^([A-Z_]+) = '([^'\n]*)'$/.exec(line);
        if (m === null) throw new Error(`not a var line: ${line}`);
        return [m[1] as string, m[2] as string];
      }),
  );
}

/** Every var's JSON arrays, merged: one RULES and one BRIDGES for all examples. */
function mergedVars(): Record<string, string> {
  const merged = new Map<string, unknown[]>();
  for (const [name, value] of varLines())
    merged.set(name, [...(merged.get(name) ?? []), ...JSON.parse(value)]);
  return Object.fromEntries([...merged].map(([k, v]) => [k, JSON.stringify(v)]));
}

describe("README integration snippets", () => {
  it("are all either a binding for the end of wrangler.toml or lines for [vars]", () => {
    expect(toml.length).toBeGreaterThan(0);
    expect(atEnd.length + underVars.length).toBe(toml.length);
    // A [vars] block must hold no table header: pasted under [vars] it would end that table.
    for (const b of underVars) expect(b.text).not.toMatch(/^\[/m);
    // An end block starts with its table: pasted at the end it would otherwise join the last one.
    for (const b of atEnd) expect(b.text.split("\n")[1]).toMatch(/^\[\[?[a-z0-9_.]+\]\]?$/);
  });

  it("make a wrangler.toml that wrangler reads and a configuration the broker accepts", () => {
    const vars = mergedVars();
    expect(Object.keys(vars).sort()).toEqual(["BRIDGES", "RULES"]);
    const original = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
    expect(original.match(/^\[vars\]$/gm)).toHaveLength(1);
    const pasted = [
      original
        .replace(
          /^\[vars\]$/m,
          `[vars]\n${Object.entries(vars)
            .map(([k, v]) => `${k} = '${v}'`)
            .join("\n")}`,
        )
        // The copy lives elsewhere: its paths must still name this checkout.
        .replace(/^main = "(.*)"$/m, (_, p: string) => `main = ${JSON.stringify(join(ROOT, p))}`)
        .replace(/^directory = "(.*)"$/m, (_, p: string) => `directory = ${JSON.stringify(join(ROOT, p))}`)
        // wrangler would run the console's build there.
        .replace(/^\[build\]\ncommand = .*$/m, ""),
      ...atEnd.map((b) => b.text),
    ].join("\n");
    const dir = mkdtempSync(join(tmpdir(), "nimbus-readme-"));
    writeFileSync(join(dir, "wrangler.toml"), pasted);
    const run = spawnSync(
      join(ROOT, "node_modules/.bin/wrangler"),
      ["types", "--include-runtime=false", "--config", join(dir, "wrangler.toml"), join(dir, "env.d.ts")],
      { cwd: dir, encoding: "utf8", env: { ...process.env, WRANGLER_SEND_METRICS: "false" } },
    );
    expect(run.stderr + run.stdout).not.toMatch(/error/i);
    expect(run.status).toBe(0);
    const types = readFileSync(join(dir, "env.d.ts"), "utf8");
    const bindings = atEnd.flatMap((b) =>
      [...b.text.matchAll(/^binding = "(\w+)"$/gm)].map((m) => m[1] as string),
    );
    expect(bindings.sort()).toEqual(["ARCHIVE", "DB", "HOT", "INGEST"]);
    for (const b of bindings) expect(types).toMatch(new RegExp(`\\b${b}: `));

    // The secrets the snippets tell the reader to create.
    const secrets = integrations
      .filter((b) => b.lang === "sh")
      .flatMap((b) => [...b.text.matchAll(/wrangler secret put (\w+)/g)].map((m) => m[1] as string));
    expect(secrets.sort()).toEqual(["HOOK_SECRET", "PLANT_PASSWORD"]);
    const env = {
      ...vars,
      ...Object.fromEntries(bindings.map((b) => [b, {}])),
      ...Object.fromEntries(secrets.map((s) => [s, "a secret"])),
    };
    const config = readConfig(env);
    expect(config.rules.map((r) => r.target.kind).sort()).toEqual([
      "d1",
      "queue",
      "r2",
      "service",
      "webhook",
    ]);
    expect(config.bridges.map((b) => b.name)).toEqual(["plant"]);
    // wrangler starts in a few seconds, more on a busy machine.
  }, 30_000);
});
