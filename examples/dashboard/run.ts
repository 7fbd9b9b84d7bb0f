/**
 * `npm run example:dashboard`: starts the broker locally (as `npm start` does) and
 * a handful of simulated devices publishing temperatures twice a second. Open
 * http://127.0.0.1:8787/examples/dashboard/ to watch. Stops after DURATION seconds
 * (default: 10 minutes) or Ctrl-C.
 */
import { spawn } from "node:child_process";
import mqtt from "mqtt";

const DEVICES = ["kitchen", "garage", "attic", "cellar"];
const duration = Number(process.env.DURATION ?? 600) * 1000;
const broker = spawn("npm", ["start"], { stdio: ["ignore", "inherit", "inherit"], detached: true });
const stop = () => {
  try {
    process.kill(-(broker.pid as number), "SIGTERM");
  } catch {
    // already gone
  }
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);

for (let i = 0; i < 120; i++) {
  const ok = await fetch("http://127.0.0.1:8787/").then(
    (r) => r.ok,
    () => false,
  );
  if (ok) break;
  await new Promise((r) => setTimeout(r, 500));
}
console.log("dashboard: http://127.0.0.1:8787/examples/dashboard/");

const client = mqtt.connect("ws://127.0.0.1:8787/mqtt", {
  clientId: "simulated-devices",
  reconnectPeriod: 1000,
});
const temps = new Map(DEVICES.map((d, i) => [d, 18 + i * 2]));
const timer = setInterval(() => {
  for (const [device, t] of temps) {
    const next = t + (Math.random() - 0.5) * 0.6;
    temps.set(device, next);
    client.publish(`telemetry/${device}/temperature`, next.toFixed(2));
  }
}, 500);
setTimeout(() => {
  clearInterval(timer);
  client.end();
  stop();
}, duration);
