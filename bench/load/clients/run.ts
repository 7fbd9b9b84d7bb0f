/** Runs traffic through an open fleet until every message has arrived (or a time limit). */
import { expected, type FleetPlan, now, type Outcome, type Traffic } from "./core.ts";
import type { Fleet } from "./libraries.ts";

export interface Run extends Outcome {
  /** From the first publish until the last delivery, s. */
  seconds: number;
  /** Every message published and delivered fanOut times within the limit. */
  complete: boolean;
}

/** How often progress is asked (a page or a process answers each time). */
const POLL_MS = 50;

export async function runFleet(
  fleet: Fleet,
  plan: FleetPlan,
  traffic: Traffic,
  limitMs?: number,
): Promise<Run> {
  const total = expected(plan, traffic);
  const limit = limitMs ?? (traffic.kind === "spread" ? traffic.seconds * 1000 : 0) + 30_000;
  const start = now();
  await fleet.start(traffic);
  let complete = false;
  while (now() - start < limit) {
    const p = await fleet.progress();
    if (p.published >= total && p.received >= total * plan.fanOut) {
      complete = true;
      break;
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  const seconds = (now() - start) / 1000;
  return { ...(await fleet.finish()), seconds, complete };
}
