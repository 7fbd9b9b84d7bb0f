/**
 * Debian's Mosquitto as a local broker: the benchmark's peer, and the remote end
 * of bridges in test/e2e/bridge.test.ts. Plain TCP on loopback (2.0.11 is built
 * without websockets here).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./broker.ts";

export interface RunningMosquitto {
  port: number;
  url: string;
  pid: () => number | undefined;
  /** Stops it (SIGTERM: with persistence, it writes its sessions first) and starts it again on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  start(): Promise<void>;
}

/** `persistence`: keep sessions (and their queued messages) across a restart. `extra`: more lines of its configuration. */
export async function startMosquitto(
  options: { persistence?: boolean; extra?: string[] } = {},
): Promise<RunningMosquitto> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "nimbus-mosquitto-"));
  const conf = join(dir, "mosquitto.conf");
  writeFileSync(
    conf,
    [
      `listener ${port} 127.0.0.1`,
      "allow_anonymous true",
      options.persistence ? `persistence true\npersistence_location ${dir}/` : "persistence false",
      "log_type error",
      ...(options.extra ?? []),
    ].join("\n"),
  );
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn("mosquitto", ["-c", conf], { stdio: ["ignore", "ignore", "pipe"] });
    await waitForPort(port, child);
  };
  const stop = () => (child === undefined ? Promise.resolve() : kill(child));
  await start();
  return {
    port,
    url: `mqtt://127.0.0.1:${port}`,
    pid: () => child?.pid,
    restart: async () => {
      await stop();
      await start();
    },
    stop,
    start,
  };
}

export async function waitForPort(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`broker exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} never opened`);
}

export function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), 3_000);
  });
}
