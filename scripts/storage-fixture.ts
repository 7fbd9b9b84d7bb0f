/**
 * `npm run fixture:storage -- <release>`: writes test/fixtures/storage/<release>/,
 * the storage this code leaves behind (sessions, queues, retained messages,
 * subscriptions; see test/support/storage-fixture.ts), for later releases to
 * open in test/e2e/upgrade.test.ts. Run once per release, before its first
 * schema change ships.
 */
import { existsSync, rmSync } from "node:fs";
import { resolve } from "node:path";
import { startBroker } from "../test/support/broker.ts";
import { FIXTURE_VARS, writeFixture } from "../test/support/storage-fixture.ts";

const [release] = process.argv.slice(2);
if (!release || !/^[\w.-]+$/.test(release)) {
  console.error("usage: npm run fixture:storage -- <release>");
  process.exit(2);
}
const dir = resolve(import.meta.dirname, "../test/fixtures/storage", release);
if (existsSync(dir)) rmSync(dir, { recursive: true });
const broker = await startBroker({ persistTo: dir, vars: FIXTURE_VARS });
try {
  await writeFixture(broker.url);
} finally {
  await broker.stop();
}
console.log(`wrote ${dir}`);
