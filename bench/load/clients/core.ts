/**
 * What every client fleet of the benchmark shares (in Node and, bundled, in Chromium):
 * who subscribes to what, when each publisher publishes, and what arrived how late.
 *
 * A fleet of P slots holds publisher i and subscriber i for each slot i. Publisher i
 * publishes QoS 1 to `<prefix>/t<i>`; subscriber j subscribes to the topics of
 * publishers j … j+fanOut-1 (mod P), so every message is delivered `fanOut` times and
 * every subscriber receives as much as a publisher sends, times fanOut.
 * Payloads carry their send time (wall clock in ms, which all processes of the machine share).
 */

export interface FleetPlan {
  url: string;
  /** Topic prefix and client id prefix, unique per run. */
  prefix: string;
  /** Publishers (and as many subscribers). */
  slots: number;
  fanOut: number;
  /** Clean sessions, or persistent ones (3.1.1 Clean Session 0, 5.0 Clean Start 0 and a long expiry). */
  clean: boolean;
  version: 4 | 5;
}

/** Each publisher once a second at its own random phase, or `each` messages at once. */
export type Traffic = { kind: "spread"; seconds: number } | { kind: "burst"; each: number };

export interface Progress {
  published: number;
  received: number;
}
export interface Outcome extends Progress {
  /** Publish-to-delivery time of each delivered message, ms. */
  latencies: number[];
}

/** The slots one host (a process, a page) runs: [from, to). */
export interface Slice {
  from: number;
  to: number;
}

export const publisherId = (plan: FleetPlan, i: number) => `${plan.prefix}-p${i}`;
export const subscriberId = (plan: FleetPlan, i: number) => `${plan.prefix}-s${i}`;
export const topicOf = (plan: FleetPlan, i: number) => `${plan.prefix}/t${i}`;

/** The topics subscriber `j` subscribes to. */
export function topicsOf(plan: FleetPlan, j: number): string[] {
  if (plan.fanOut > plan.slots) throw new Error(`fan-out ${plan.fanOut} needs at least as many slots`);
  return Array.from({ length: plan.fanOut }, (_, k) => topicOf(plan, (j + k) % plan.slots));
}

/** Messages the whole fleet publishes for `traffic`. */
export function expected(plan: FleetPlan, traffic: Traffic): number {
  return plan.slots * (traffic.kind === "spread" ? traffic.seconds : traffic.each);
}

/** Milliseconds since the epoch, with sub-millisecond resolution, the same in every page and process. */
export const now = () => performance.timeOrigin + performance.now();

/**
 * A payload: its send time, the publisher and a sequence number, as text (every
 * library publishes strings alike), padded to 32 bytes.
 */
export function stamp(publisher: number, seq: number): string {
  return `${now().toFixed(3)} ${publisher} ${seq}`.padEnd(32, " ");
}

const text = new TextDecoder();

/** Counts what a host published and received, and how late each message arrived. */
export class Tally {
  published = 0;
  received = 0;
  readonly latencies: number[] = [];

  receive(payload: Uint8Array): void {
    this.received++;
    const sent = Number.parseFloat(text.decode(payload));
    if (Number.isFinite(sent)) this.latencies.push(now() - sent);
  }

  progress(): Progress {
    return { published: this.published, received: this.received };
  }

  outcome(): Outcome {
    return { published: this.published, received: this.received, latencies: this.latencies };
  }
}

/**
 * Runs `traffic` for the publishers of `slice`: `publish(i, seq)` sends publisher i's
 * message number seq. Resolves once the last is sent.
 */
export function drive(
  traffic: Traffic,
  slice: Slice,
  publish: (i: number, seq: number) => void,
  random: () => number = Math.random,
): Promise<void> {
  const sends: Array<Promise<void>> = [];
  for (let i = slice.from; i < slice.to; i++) {
    if (traffic.kind === "burst") {
      for (let seq = 0; seq < traffic.each; seq++) publish(i, seq);
      continue;
    }
    const phase = random() * 1000;
    for (let seq = 0; seq < traffic.seconds; seq++) {
      sends.push(
        new Promise((resolve) =>
          setTimeout(
            () => {
              publish(i, seq);
              resolve();
            },
            phase + seq * 1000,
          ),
        ),
      );
    }
  }
  return Promise.all(sends).then(() => {});
}

/** The q-quantile of sorted samples (NaN when there are none). */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}
