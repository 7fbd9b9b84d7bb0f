/**
 * The shape DESIGN.md draws, checked: product files stay small, imports form no
 * circle of more than two files (type imports counted: they tie files together as
 * much for a reader), packet handlers never reach into the Gateway class, and
 * stubs are typed by the contracts their classes implement, never cast.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const PRODUCT = ["broker", "durable-objects", "mqtt", "worker"];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return files(path);
    return name.endsWith(".ts") ? [path] : [];
  });
}

const product = PRODUCT.flatMap((d) => files(join(ROOT, d)));
const rel = (p: string) => relative(ROOT, p);

/** Every file a file imports (static `import`/`export … from`, type-only ones included), within the product. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const out: string[] = [];
  for (const m of text.matchAll(/(?:import|export)\s[^;]*?from\s+"(\.[^"]+)"/gs)) {
    const target = resolve(dirname(file), m[1] as string);
    if (product.includes(target)) out.push(target);
  }
  return out;
}

/** Strongly connected components of the import graph (Tarjan). */
function circles(): string[][] {
  const graph = new Map(product.map((f) => [f, importsOf(f)]));
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    indices.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) as number, indices.get(w) as number));
    }
    if (low.get(v) === indices.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(rel(w));
      } while (w !== v);
      if (component.length > 1) out.push(component.sort());
    }
  };
  for (const f of product) if (!indices.has(f)) visit(f);
  return out;
}

describe("the code's shape", () => {
  it("no product file is over 500 lines", () => {
    const long = product
      .map((f) => [rel(f), readFileSync(f, "utf8").split("\n").length] as const)
      .filter(([, n]) => n > 500);
    expect(long).toEqual([]);
  });

  it("no import circle of more than two files, type imports counted", () => {
    expect(circles().filter((c) => c.length > 2)).toEqual([]);
  });

  it("no packet handler imports the Gateway class", () => {
    const handlers = product.filter((f) => /gateway\/handle-[^/]+\.ts$/.test(f));
    expect(handlers.length).toBeGreaterThan(0);
    const gateway = join(ROOT, "durable-objects/gateway.ts");
    expect(handlers.filter((h) => importsOf(h).includes(gateway)).map(rel)).toEqual([]);
  });

  it("no stub is cast: `as unknown as` appears nowhere in durable-objects/ or worker/", () => {
    const cast = product
      .filter((f) => /^(durable-objects|worker)\//.test(rel(f)))
      .filter((f) => readFileSync(f, "utf8").includes("as unknown as"))
      .map(rel);
    expect(cast).toEqual([]);
  });
});
