/**
 * `npm run bench -- --storms`: every deploy reconnects every client at once. In one
 * run, against Nimbus 1×1 (through wrangler's dev proxy, and straight to the broker's
 * workerd), Mosquitto over websockets and Aedes: connects and subscribes a second for
 * 2,000 and 10,000 raw WebSocket clients opening 500 at a time; the restart storm
 * (clients connected, half persistent, the broker restarts, all come back); and 300
 * users with passwords against 300 anonymous clients connecting at once (Nimbus).
 */
import { execFileSync } from "node:child_process";
import { passwordEntry } from "../../../broker/auth/passwords.ts";
import type { LoadClient } from "../client.ts";
import { fixed, int, machine, mosquittoVersion, pkg, table } from "../report.ts";
import { connectAll, QUICK, type Result, restartStorm } from "../scenarios.ts";
import { aedes, mosquittoWs, nimbus, type Target } from "../targets.ts";

export interface StormSizes {
  clients: number[];
  /** Clients connected when each broker restarts (0: no restart storm). */
  restartClients: number;
  passwordUsers: number;
  /** Connects in flight at once. */
  parallel: number;
}

export const STORMS_FULL: StormSizes = {
  clients: [2_000, 10_000],
  restartClients: 2_000,
  passwordUsers: 300,
  parallel: 500,
};
export const STORMS_QUICK: StormSizes = {
  clients: [100],
  restartClients: 50,
  passwordUsers: 10,
  parallel: 100,
};

/** The file descriptors this process tree may hold (`ulimit -Hn`); only root can raise it. */
function fdLimit(): number {
  try {
    return Number(execFileSync("sh", ["-c", "ulimit -Hn"], { encoding: "utf8" }).trim());
  } catch {
    return Number.NaN;
  }
}

/**
 * Under wrangler dev the dev proxy's workerd holds two sockets a client, and so does
 * the broker's own workerd (measured with storms-memory.ts: 2,013 sockets for 1,000
 * clients connected straight to it, 4,013 for 2,000); past the limit, accept() fails
 * and clients are reset, or the broker's runtime crashes (trap int3) and wrangler
 * restarts it: 10,000 clients straight to the broker did, every time, with 20,000.
 */
const socketsFit = (n: number, limit: number) => !(2 * n + 1_000 > limit);

/** A few clients first, so that no broker's first storm pays for its start (objects made, code compiled). */
export async function warmUp(t: Target, url: string): Promise<void> {
  await storm(t, url, 50, 50);
}

/** The benchmark's AUTH_PEPPER (a secret in a deployment). */
export const PEPPER = "storms-bench-pepper-0123456789abcdef";

let runs = 0;
const prefix = () => `storm/${process.pid}-${++runs}`;

export interface StormResult {
  seconds: number;
  perSecond: number;
  error?: string;
  /** Something the rate must be read with (the broker's runtime restarted meanwhile). */
  note?: string;
}

/** The broker's workerd processes now (Nimbus; none for other brokers). */
export const runtimes = (t: Target) => new Set(t.workerdCpu?.().keys() ?? []);

/**
 * Whether a workerd of the broker ended during a storm: wrangler restarts a runtime
 * that crashed (as when its file descriptors run out: `socketsFit`), and the clients
 * it dropped connect again to the new one, which the rate then includes.
 */
export function restartedSince(before: Set<number>, t: Target): string | undefined {
  const gone = [...before].filter((pid) => !runtimes(t).has(pid));
  return gone.length === 0 ? undefined : "the broker's workerd crashed and was restarted during the storm";
}

/** n clients connect (clean) and subscribe, `parallel` at a time; then all close. */
export async function storm(
  t: Target,
  url: string,
  n: number,
  parallel: number,
  credentials?: (i: number) => { username: string; password: string } | undefined,
): Promise<StormResult> {
  const p = prefix();
  const ids = Array.from({ length: n }, (_, i) => `${p}-${i}`);
  const before = runtimes(t);
  const start = performance.now();
  let clients: LoadClient[] = [];
  try {
    clients = await connectAll(
      { ...t, url },
      ids,
      () => false,
      (i) => `${p}/${i}`,
      parallel,
      credentials,
    );
  } catch (err) {
    return { seconds: Number.NaN, perSecond: Number.NaN, error: String(err).slice(0, 80) };
  }
  const seconds = (performance.now() - start) / 1000;
  const note = restartedSince(before, t);
  for (const c of clients) c.close();
  await Promise.race([Promise.all(clients.map((c) => c.closed)), new Promise((r) => setTimeout(r, 30_000))]);
  return { seconds, perSecond: n / seconds, ...(note === undefined ? {} : { note }) };
}

const rate = (r: StormResult | string | undefined) =>
  r === undefined
    ? "–"
    : typeof r === "string"
      ? r
      : r.error !== undefined
        ? `failed: ${r.error}`
        : `${int(r.perSecond)} /s (${fixed(r.seconds, 2)} s)${r.note === undefined ? "" : `, ${r.note}`}`;

export async function stormsSection(s: StormSizes, quick: boolean): Promise<string> {
  const limit = fdLimit();
  const names = [
    "Nimbus 1×1 (dev proxy)",
    "Nimbus 1×1 (its workerd, no proxy)",
    "Mosquitto (websockets)",
    "Aedes",
  ];
  const connects = new Map<number, Map<string, StormResult | string>>();
  const put = (n: number, name: string, r: StormResult | string) => {
    const row = connects.get(n) ?? new Map();
    row.set(name, r);
    connects.set(n, row);
  };
  const restarts = new Map<string, Result>();

  // Nimbus, one broker for all of it: password users installed, anonymous clients let in beside them.
  const users = Array.from({ length: s.passwordUsers }, (_, i) => ({
    username: `user${i}`,
    password: `secret-${i}-${process.pid}`,
  }));
  const entries = await Promise.all(users.map((u) => passwordEntry(u.username, u.password)));
  let anonymous: StormResult;
  let withPasswords: StormResult;
  let again: StormResult;
  {
    // With a pepper, a login that succeeded once is checked by its verifier next time (password-logins.ts).
    const t = await nimbus(1, 1, { vars: { MQTT_PASSWORDS: entries.join(" "), AUTH_PEPPER: PEPPER } });
    try {
      const direct = await (t.direct?.() ?? Promise.resolve(t.url));
      await warmUp(t, t.url);
      await warmUp(t, direct);
      for (const n of s.clients) {
        console.error(`— storms: ${n} clients, Nimbus`);
        const skipped = `skipped: needs ~${int(2 * n + 1_000)} file descriptors, the limit is ${int(limit)}`;
        const fits = socketsFit(n, limit);
        put(n, names[0] as string, fits ? await storm(t, t.url, n, s.parallel) : skipped);
        put(n, names[1] as string, fits ? await storm(t, direct, n, s.parallel) : skipped);
      }
      console.error(`— storms: ${s.passwordUsers} password users and ${s.passwordUsers} anonymous clients`);
      anonymous = await storm(t, t.url, s.passwordUsers, s.passwordUsers);
      withPasswords = await storm(t, t.url, s.passwordUsers, s.passwordUsers, (i) => users[i]);
      // As after a deploy: the same users again, each with a verifier kept by its first login.
      again = await storm(t, t.url, s.passwordUsers, s.passwordUsers, (i) => users[i]);
      if (s.restartClients > 0) {
        console.error("— storms: restart, Nimbus");
        restarts.set(
          names[0] as string,
          await restartStorm(t, { ...QUICK, restartClients: s.restartClients }),
        );
      }
    } finally {
      await t.stop();
    }
  }
  for (const [name, start] of [
    [names[2] as string, mosquittoWs],
    [names[3] as string, aedes],
  ] as const) {
    const t = await start();
    try {
      await warmUp(t, t.url);
      for (const n of s.clients) {
        console.error(`— storms: ${n} clients, ${name}`);
        put(n, name, await storm(t, t.url, n, s.parallel));
      }
      if (s.restartClients > 0) {
        console.error(`— storms: restart, ${name}`);
        restarts.set(name, await restartStorm(t, { ...QUICK, restartClients: s.restartClients }));
      }
    } finally {
      await t.stop();
    }
  }

  const connectTable = table(
    [
      `clients connecting and subscribing, ${s.parallel} at a time`,
      ...names,
      "Nimbus (no proxy) / Mosquitto",
      "Nimbus (no proxy) / Aedes",
    ],
    [...connects].map(([n, row]) => {
      const ratio = (other: string) => {
        const a = row.get(names[1] as string);
        const b = row.get(other);
        return typeof a === "object" &&
          typeof b === "object" &&
          Number.isFinite(a.perSecond) &&
          Number.isFinite(b.perSecond)
          ? `${fixed(a.perSecond / b.perSecond, 2)}×`
          : "–";
      };
      return [
        int(n),
        ...names.map((name) => rate(row.get(name))),
        ratio(names[2] as string),
        ratio(names[3] as string),
      ];
    }),
  );
  const restartTable = table(
    ["broker", `restart with ${int(s.restartClients)} clients (half persistent): all back and subscribed`],
    [...restarts].map(([name, r]) => [name, r.text]),
  );
  const timeRatio = (r: StormResult) =>
    Number.isFinite(r.seconds / anonymous.seconds) ? `${fixed(r.seconds / anonymous.seconds, 2)}×` : "–";
  const passwordTable = table(
    ["Nimbus 1×1", `${s.passwordUsers} clients connecting and subscribing at once`, "time / anonymous"],
    [
      ["anonymous", rate(anonymous), "1.00×"],
      [
        "user name and password, first login (PBKDF2-SHA256, 100,000 iterations)",
        rate(withPasswords),
        timeRatio(withPasswords),
      ],
      [
        "the same users reconnecting (AUTH_PEPPER: the verifier of the first login, one HMAC)",
        rate(again),
        timeRatio(again),
      ],
    ],
  );
  return [
    "## Reconnect storms",
    "",
    "`npm run bench -- --storms`",
    "",
    machine(
      [
        `- ${mosquittoVersion()} (websockets listener beside a plain one); aedes ${pkg("aedes")} over \`ws\``,
        "- raw WebSocket clients (the benchmark's codec), clean sessions, each subscribing to one topic of its own; a refused or reset connect is tried again after 100 ms, up to 20 times",
        `- file descriptors: \`ulimit -Hn\` is ${int(limit)} here, and under wrangler dev the dev proxy's workerd holds two sockets a client and so does the broker's own workerd (the port it listens on is read from /proc), so a storm bigger than about ${int((limit - 1_000) / 2)} clients is skipped for Nimbus (past it the broker's runtime crashes and wrangler restarts it); raising it takes root (\`ulimit -n\` in the shell that runs \`npm run bench\`, or \`LimitNOFILE\` for a service)`,
        `- passwords: ${s.passwordUsers} entries made with the function \`npm run passwd\` uses, installed as MQTT_PASSWORDS (as one \`--var\`: wrangler dev does not enforce the size limit of an environment variable), with AUTH_PEPPER set; anonymous clients are let in beside them (ALLOW_ANONYMOUS)`,
      ],
      quick,
    ),
    "",
    connectTable,
    "",
    ...(restarts.size > 0 ? [restartTable, ""] : []),
    passwordTable,
  ].join("\n");
}
