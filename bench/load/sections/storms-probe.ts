/**
 * `node bench/load/sections/storms-probe.ts [clients] [restartClients] [passwordUsers]`:
 * the Nimbus half of `npm run bench -- --storms`, printed and not recorded, to
 * measure one change to the connect path quickly (defaults 2,000, 2,000, 300).
 */
import { passwordEntry } from "../../../broker/auth/passwords.ts";
import { QUICK, restartStorm } from "../scenarios.ts";
import { nimbus } from "../targets.ts";
import { PEPPER, type StormResult, storm, warmUp } from "./storms.ts";

const [clients = 2_000, restartClients = 2_000, passwordUsers = 300] = process.argv
  .slice(2)
  .filter((a) => !a.startsWith("--"))
  .map(Number);
const show = (what: string, r: StormResult) =>
  console.log(
    `${what}: ${Math.round(r.perSecond)} /s (${r.seconds.toFixed(2)} s)${r.error ? ` ${r.error}` : ""}${r.note ? `, ${r.note}` : ""}`,
  );

const users = Array.from({ length: passwordUsers }, (_, i) => ({
  username: `user${i}`,
  password: `secret-${i}-${process.pid}`,
}));
const entries = await Promise.all(users.map((u) => passwordEntry(u.username, u.password)));
const t = await nimbus(1, 1, {
  vars: { MQTT_PASSWORDS: entries.join(" "), AUTH_PEPPER: PEPPER },
});
try {
  const direct = await (t.direct?.() ?? Promise.resolve(t.url));
  await warmUp(t, t.url);
  await warmUp(t, direct);
  if (clients > 0) {
    show(`${clients} clients, dev proxy`, await storm(t, t.url, clients, 500));
    show(`${clients} clients, direct`, await storm(t, direct, clients, 500));
  }
  if (passwordUsers > 0) {
    const anonymous = await storm(t, t.url, passwordUsers, passwordUsers);
    show(`${passwordUsers} anonymous`, anonymous);
    const first = await storm(t, t.url, passwordUsers, passwordUsers, (i) => users[i]);
    show(`${passwordUsers} password users, first login`, first);
    const again = await storm(t, t.url, passwordUsers, passwordUsers, (i) => users[i]);
    show(`${passwordUsers} password users, again`, again);
    console.log(
      `passwords / anonymous: first ${(first.seconds / anonymous.seconds).toFixed(2)}×, again ${(again.seconds / anonymous.seconds).toFixed(2)}×`,
    );
  }
  if (restartClients > 0)
    console.log(`restart ${restartClients}: ${(await restartStorm(t, { ...QUICK, restartClients })).text}`);
} finally {
  await t.stop();
}
