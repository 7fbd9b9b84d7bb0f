/**
 * What password logins cost, measured against a local broker (`wrangler dev`),
 * for docs/security.md and issue 25.
 *
 *   npx node scripts/users-bench.ts reconnect [--users 300] [--rounds 3] [--pepper off] [--source secret]
 *
 * N users log in once (so that, with AUTH_PEPPER, their verifiers are kept), then
 * each round restarts the broker and has N anonymous clients connect at once, and
 * after another restart N password users: the time from the first CONNECT to the
 * last CONNACK of each storm, and their ratio. `--pepper off` is every login a
 * full PBKDF2 check (the broker before the verifier cache); `--source secret`
 * puts the users in MQTT_PASSWORDS instead of the store.
 *
 *   npx node scripts/users-bench.ts scale [--total 100000] [--sample 100]
 *
 * Times logins one at a time (CONNECT to CONNACK, raw client) with `sample`
 * users in the store, then again after loading the store to `total` users
 * through the HTTP API in pages of 1,000: a first login (a full check) and a
 * second (the verifier), median and 95th percentile, at each size.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import mqtt, { type MqttClient } from "mqtt";
import { hashPassword, passwordEntry } from "../broker/auth/passwords.ts";
import { workerdCpu as cpuOf, type RunningBroker, startBroker } from "../test/support/broker.ts";
import { RawClient } from "../test/support/clients.ts";

const TOKEN = "bench-token";
const PEPPER = "bench-pepper-0123456789abcdef0123456789";
const IMPORT_PAGE = 1000;

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: {
    users: { type: "string", default: "300" },
    rounds: { type: "string", default: "3" },
    pepper: { type: "string", default: "on" },
    source: { type: "string", default: "store" },
    total: { type: "string", default: "100000" },
    sample: { type: "string", default: "100" },
  },
});

interface User {
  name: string;
  password: string;
  hash: string;
}

/** Users with passwords and hashes of their own (hashed in parallel: WebCrypto runs off the main thread). */
async function makeUsers(prefix: string, n: number): Promise<User[]> {
  const users: User[] = [];
  for (let i = 0; i < n; i += 64) {
    const batch = Array.from({ length: Math.min(64, n - i) }, (_, j) => ({
      name: `${prefix}-${i + j}`,
      password: `pw-${prefix}-${i + j}-${Math.random().toString(36).slice(2)}`,
    }));
    users.push(
      ...(await Promise.all(batch.map(async (u) => ({ ...u, hash: await hashPassword(u.password) })))),
    );
  }
  return users;
}

async function importUsers(
  broker: RunningBroker,
  users: Array<{ name: string; hash: string }>,
): Promise<void> {
  for (let i = 0; i < users.length; i += IMPORT_PAGE) {
    const res = await fetch(`${broker.httpUrl}/api/users`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ users: users.slice(i, i + IMPORT_PAGE) }),
    });
    if (res.status !== 200) throw new Error(`import: ${res.status} ${await res.text()}`);
  }
}

/** Connects MQTT.js (3.1.1) and resolves on CONNACK, or rejects with the refusal. */
function connectOne(url: string, clientId: string, user?: User): Promise<MqttClient> {
  const client = mqtt.connect(url, {
    clientId,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 300_000,
    ...(user === undefined ? {} : { username: user.name, password: user.password }),
  });
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve(client));
    client.once("error", reject);
    client.once("close", () => reject(new Error(`${clientId} closed before CONNACK`)));
  });
}

/** CPU seconds both workerd processes of the broker have used so far (test/support/broker.ts). */
function workerdCpu(broker: RunningBroker): number {
  const { runtime, proxy } = cpuOf(broker);
  return runtime + proxy;
}

/** N clients connect at once: ms from the first CONNECT to the last CONNACK, and workerd's CPU seconds meanwhile. */
async function storm(
  broker: RunningBroker,
  prefix: string,
  users: Array<User | undefined>,
): Promise<{ ms: number; cpu: number }> {
  const cpu = workerdCpu(broker);
  const started = performance.now();
  const clients = await Promise.all(users.map((u, i) => connectOne(broker.url, `${prefix}-${i}`, u)));
  const took = performance.now() - started;
  const used = workerdCpu(broker) - cpu;
  await Promise.all(clients.map((c) => c.endAsync(true)));
  return { ms: took, cpu: used };
}

/** The gateways' counters, summed (as test/support's gatewayCounters, with time for a broker just started under load). */
async function counters(broker: RunningBroker): Promise<Record<string, number>> {
  const res = await fetch(`${broker.httpUrl}/api/stats`, {
    headers: { authorization: `Bearer ${TOKEN}` },
    signal: AbortSignal.timeout(120_000),
  });
  const stats = (await res.json()) as { gateways: Array<{ counters: Record<string, number> }> };
  const sum: Record<string, number> = {};
  for (const g of stats.gateways) for (const [k, v] of Object.entries(g.counters)) sum[k] = (sum[k] ?? 0) + v;
  return sum;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const p95 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length * 0.95)] as number;
const ms = (x: number) => `${x.toFixed(1)} ms`;

async function reconnect(): Promise<void> {
  const n = Number(values.users);
  const rounds = Number(values.rounds);
  const users = await makeUsers("user", n);
  const vars: Record<string, string> = {
    ALLOW_ANONYMOUS: "true",
    API_TOKEN: TOKEN,
    AUTH_FAILURES_PER_MINUTE: "100000",
    AUTH_FAILURES_PER_MINUTE_GATEWAY: "100000",
    MAX_CONNECTIONS_PER_GATEWAY: String(Math.max(1000, 2 * n)),
    // Without the cache, the last of a storm waits n × 35 ms for its check.
    CONNECT_TIMEOUT: "600",
  };
  if (values.pepper !== "off") vars.AUTH_PEPPER = PEPPER;
  if (values.source === "secret")
    vars.MQTT_PASSWORDS = (await Promise.all(users.map((u) => passwordEntry(u.name, u.password)))).join(" ");
  const persistTo = mkdtempSync(join(tmpdir(), "nimbus-users-bench-"));
  let broker = await startBroker({ vars, persistTo });
  try {
    if (values.source !== "secret") await importUsers(broker, users);
    // They logged in before the restart (in groups, as the storm is measured later).
    for (let i = 0; i < n; i += 50) await storm(broker, `warm-${i}`, users.slice(i, i + 50));
    console.log(
      `${n} users (${values.source}), AUTH_PEPPER ${values.pepper}; each storm follows a restart (wrangler dev, --persist-to)`,
    );
    const anonymous: Array<{ ms: number; cpu: number }> = [];
    const password: Array<{ ms: number; cpu: number }> = [];
    const checks: string[] = [];
    for (let r = 0; r < rounds; r++) {
      // Alternate which storm comes first, so that neither always meets a fresher process.
      for (const kind of r % 2 === 0 ? ["anonymous", "password"] : ["password", "anonymous"]) {
        await broker.stop();
        broker = await startBroker({ vars, persistTo });
        // Both storms meet a broker woken by the same /api/stats call.
        const before = await counters(broker);
        const took = await storm(
          broker,
          `${kind}-${r}`,
          kind === "anonymous" ? users.map(() => undefined) : users,
        );
        const after = await counters(broker);
        const moved = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
        if (kind === "anonymous") anonymous.push(took);
        else {
          password.push(took);
          checks.push(`${moved("logins_full_check")} full checks, ${moved("logins_verifier")} by verifier`);
        }
      }
      const a = anonymous[r] as { ms: number; cpu: number };
      const p = password[r] as { ms: number; cpu: number };
      console.log(
        `round ${r + 1}: anonymous ${ms(a.ms)} (workerd ${a.cpu.toFixed(2)} s CPU), password ${ms(p.ms)} (${p.cpu.toFixed(2)} s CPU), ratio ${(p.ms / a.ms).toFixed(2)} wall, ${(p.cpu / a.cpu).toFixed(2)} CPU (${checks[r]})`,
      );
    }
    const wall = (xs: Array<{ ms: number }>) => median(xs.map((x) => x.ms));
    const cpu = (xs: Array<{ cpu: number }>) => median(xs.map((x) => x.cpu));
    console.log(
      `median: anonymous ${ms(wall(anonymous))}, ${cpu(anonymous).toFixed(2)} s CPU; password ${ms(wall(password))}, ${cpu(password).toFixed(2)} s CPU; ratio ${(wall(password) / wall(anonymous)).toFixed(2)} wall, ${(cpu(password) / cpu(anonymous)).toFixed(2)} CPU; median of the rounds' wall ratios ${median(password.map((p, r) => p.ms / (anonymous[r] as { ms: number }).ms)).toFixed(2)}`,
    );
  } finally {
    await broker.stop();
  }
}

/** One login at a time: CONNECT to CONNACK in ms for each user, in order, and workerd's CPU seconds for them all. */
async function timeLogins(
  broker: RunningBroker,
  users: User[],
  tag: string,
): Promise<{ times: number[]; cpu: number }> {
  const times: number[] = [];
  const cpu = workerdCpu(broker);
  for (const [i, u] of users.entries()) {
    const r = await RawClient.open(broker.url, 4);
    const started = performance.now();
    r.sendConnect(`${tag}-${i}`, { username: u.name, password: new TextEncoder().encode(u.password) });
    const connack = await r.next("connack", 30_000);
    times.push(performance.now() - started);
    r.terminate();
    if (connack.reasonCode !== 0) throw new Error(`${u.name}: CONNACK ${connack.reasonCode}`);
  }
  return { times, cpu: workerdCpu(broker) - cpu };
}

async function scale(): Promise<void> {
  const total = Number(values.total);
  const sampleSize = Number(values.sample);
  const broker = await startBroker({
    vars: { ALLOW_ANONYMOUS: "false", API_TOKEN: TOKEN, AUTH_PEPPER: PEPPER },
  });
  try {
    const warm = await makeUsers("warm", 50);
    const small = await makeUsers("small", sampleSize);
    const large = await makeUsers("large", sampleSize);
    await importUsers(broker, [...warm, ...small]);
    await timeLogins(broker, warm, "warm");
    const report = (label: string, { times, cpu }: { times: number[]; cpu: number }) =>
      console.log(
        `  ${label}: median ${ms(median(times))}, p95 ${ms(p95(times))}; workerd ${((cpu / times.length) * 1000).toFixed(1)} ms CPU a login`,
      );
    console.log(`${warm.length + small.length} users in the store:`);
    report("first login (full check)", await timeLogins(broker, small, "s1"));
    report("second login (verifier) ", await timeLogins(broker, small, "s2"));

    // The rest, as an import would bring them: pages of 1,000, one hash shared
    // (what a login costs does not depend on which hash a row holds).
    const filler = await hashPassword("filler");
    const rest = total - warm.length - small.length - large.length;
    const started = performance.now();
    for (let i = 0; i < rest; i += IMPORT_PAGE * 10) {
      const page = Array.from({ length: Math.min(IMPORT_PAGE * 10, rest - i) }, (_, j) => ({
        name: `filler-${i + j}`,
        hash: filler,
      }));
      await importUsers(broker, page);
    }
    await importUsers(broker, large);
    const loadMs = performance.now() - started;
    console.log(
      `loaded ${rest + large.length} more users in ${(loadMs / 1000).toFixed(1)} s (${Math.ceil((rest + large.length) / IMPORT_PAGE)} calls of POST /api/users)`,
    );
    console.log(`${total} users in the store:`);
    report("first login (full check)", await timeLogins(broker, large, "l1"));
    report("second login (verifier) ", await timeLogins(broker, large, "l2"));
    report(`second login of the first ${sampleSize} again`, await timeLogins(broker, small, "s3"));
  } finally {
    await broker.stop();
  }
}

if (positionals[0] === "reconnect") await reconnect();
else if (positionals[0] === "scale") await scale();
else {
  console.error(
    "usage: npx node scripts/users-bench.ts reconnect|scale [options] (see the comment at the top)",
  );
  process.exit(2);
}
