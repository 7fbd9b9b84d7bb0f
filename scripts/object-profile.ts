/**
 * Whose JavaScript a broker's CPU went to, by class of object: a V8 CPU profile
 * of the broker's isolate under `wrangler dev` (through wrangler's inspector),
 * each sample charged to the nearest frame on its stack that is in a class's own
 * files (`durable-objects/gateway.ts` and `gateway/`, `registry.ts`, …), mapped
 * back from the bundle with wrangler's source map. Shared code (`mqtt/`,
 * `broker/`, `stubs.ts`) is charged to the class that called it. Locally every
 * object runs in one isolate, so this is how to tell a gateway's share of a
 * connect from its registry's, session's and shard's. What V8 does not see (the
 * runtime's own C++: sockets, SQLite, RPC) is not in it.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { SourceMap, type SourceMapPayload } from "node:module";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";

const CLASSES: Array<[string, RegExp]> = [
  ["gateway", /durable-objects\/gateway(\.ts|\/)/],
  ["registry", /durable-objects\/registry\.ts/],
  ["session", /durable-objects\/session\.ts/],
  ["shard", /durable-objects\/topic-shard(\.ts|\/)/],
  ["users", /durable-objects\/user-shard\.ts/],
  ["bridge", /durable-objects\/bridge\.ts/],
  ["worker", /(^|\/)worker\//],
];

interface CallFrame {
  url: string;
  lineNumber: number;
  columnNumber: number;
  functionName: string;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Milliseconds of samples by class; `(garbage collector)`, `(program)` and unattributed JS as "other"; idle left out. */
export type Shares = Record<string, number>;

/** A Chrome DevTools Protocol session with the broker's isolate. */
export class IsolateProfiler {
  private readonly ws: WebSocket;
  private next = 0;
  private readonly pending = new Map<number, (result: unknown) => void>();
  private bundle: { url: string; map: string } | undefined;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data) => {
      const m = JSON.parse(String(data)) as {
        id?: number;
        result?: unknown;
        method?: string;
        params?: { url: string; sourceMapURL?: string };
      };
      if (m.id !== undefined) this.pending.get(m.id)?.(m.result);
      // The Worker's bundle (wrangler's .wrangler/tmp/dev-…/index.js) and its map.
      else if (
        m.method === "Debugger.scriptParsed" &&
        m.params?.sourceMapURL &&
        m.params.url.startsWith("file:")
      )
        this.bundle = { url: m.params.url, map: new URL(m.params.sourceMapURL, m.params.url).href };
    });
  }

  static async attach(inspectorPort: number): Promise<IsolateProfiler> {
    const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as Array<{
      webSocketDebuggerUrl: string;
    }>;
    const target = targets[0];
    if (target === undefined) throw new Error("wrangler's inspector lists no isolate");
    const ws = new WebSocket(target.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    const profiler = new IsolateProfiler(ws);
    // Scripts already parsed are announced on enabling: that is all this is for.
    await profiler.call("Debugger.enable");
    await profiler.call("Debugger.disable");
    await profiler.call("Profiler.enable");
    return profiler;
  }

  call(method: string, params: object = {}): Promise<unknown> {
    const id = ++this.next;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.ws.send(JSON.stringify({ id, method, params }));
    });
  }

  start(): Promise<unknown> {
    return this.call("Profiler.start");
  }

  /** Stops the profile; the milliseconds sampled in each class's code. With `file`, the profile is written there too (Chrome DevTools opens it), and the bundle's source map beside it (`file`.map). */
  async stop(file?: string): Promise<Shares> {
    const { profile } = (await this.call("Profiler.stop")) as { profile: Profile };
    if (this.bundle === undefined) throw new Error("the Worker's bundle was not announced");
    if (file !== undefined) {
      writeFileSync(file, JSON.stringify(profile));
      // The bundle's source map, which goes with the bundle when wrangler stops.
      writeFileSync(`${file}.map`, readFileSync(fileURLToPath(this.bundle.map)));
    }
    const map = new SourceMap(
      JSON.parse(readFileSync(fileURLToPath(this.bundle.map), "utf8")) as SourceMapPayload,
    );
    return sharesOf(profile, this.bundle.url, map);
  }

  close(): void {
    this.ws.close();
  }
}

function sharesOf(profile: Profile, bundleUrl: string, map: SourceMap): Shares {
  const parent = new Map<number, number>();
  const byId = new Map<number, ProfileNode>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const own = (node: ProfileNode): string | undefined => {
    const f = node.callFrame;
    if (f.url !== bundleUrl && f.url !== "index.js") return undefined;
    const entry = map.findEntry(f.lineNumber, f.columnNumber);
    const source = "originalSource" in entry ? entry.originalSource : "";
    return CLASSES.find(([, pattern]) => pattern.test(source))?.[0];
  };
  const classOf = new Map<number, string>();
  const charge = (id: number): string => {
    const known = classOf.get(id);
    if (known !== undefined) return known;
    const node = byId.get(id) as ProfileNode;
    const name = node.callFrame.functionName;
    const up = parent.get(id);
    const found =
      own(node) ??
      (name === "(idle)" ? "idle" : up === undefined || name.startsWith("(") ? "other" : charge(up));
    classOf.set(id, found);
    return found;
  };
  const shares: Shares = {};
  profile.samples.forEach((id, i) => {
    const who = charge(id);
    if (who !== "idle") shares[who] = (shares[who] ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000;
  });
  return shares;
}
