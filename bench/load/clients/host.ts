/**
 * One host's share of a fleet for a JavaScript client library (MQTT.js in Node or in
 * Chromium, the raw client): its publishers and subscribers connected and subscribed,
 * traffic driven, arrivals counted. The library is reached through a small kit, so the
 * same code runs in Node and, bundled, in a page.
 */
import {
  drive,
  type FleetPlan,
  type Outcome,
  type Progress,
  publisherId,
  type Slice,
  stamp,
  subscriberId,
  Tally,
  type Traffic,
  topicOf,
  topicsOf,
} from "./core.ts";

/** How a host drives one client library. */
export interface Kit<C> {
  /** Resolves once CONNACK says the session is open. */
  connect(plan: FleetPlan, clientId: string): Promise<C>;
  /** One SUBSCRIBE at QoS 1 for every topic; resolves on SUBACK. */
  subscribe(client: C, topics: string[]): Promise<void>;
  onMessage(client: C, handler: (payload: Uint8Array) => void): void;
  /** QoS 1, not waiting for the PUBACK. */
  publish(client: C, topic: string, payload: string): void;
  close(client: C): Promise<void>;
}

/** Connects at most this many clients at a time, as a fleet of devices coming online would not all at once. */
const PARALLEL = 50;

export class Host<C> {
  private readonly tally = new Tally();
  private driving: Promise<void> = Promise.resolve();

  private readonly kit: Kit<C>;
  private readonly plan: FleetPlan;
  private readonly slice: Slice;
  private readonly publishers: C[];
  private readonly subscribers: C[];

  private constructor(kit: Kit<C>, plan: FleetPlan, slice: Slice, publishers: C[], subscribers: C[]) {
    this.kit = kit;
    this.plan = plan;
    this.slice = slice;
    this.publishers = publishers;
    this.subscribers = subscribers;
  }

  /** Connects the slice's subscribers (subscribed) and publishers. */
  static async open<C>(kit: Kit<C>, plan: FleetPlan, slice: Slice): Promise<Host<C>> {
    const subscribers = await inBatches(slice, async (j) => {
      const c = await kit.connect(plan, subscriberId(plan, j));
      await kit.subscribe(c, topicsOf(plan, j));
      return c;
    });
    const publishers = await inBatches(slice, (i) => kit.connect(plan, publisherId(plan, i)));
    const host = new Host(kit, plan, slice, publishers, subscribers);
    for (const s of subscribers) kit.onMessage(s, (payload) => host.tally.receive(payload));
    return host;
  }

  start(traffic: Traffic): void {
    this.driving = drive(traffic, this.slice, (i, seq) => {
      this.tally.published++;
      this.kit.publish(this.publishers[i - this.slice.from] as C, topicOf(this.plan, i), stamp(i, seq));
    });
  }

  progress(): Progress {
    return this.tally.progress();
  }

  async finish(): Promise<Outcome> {
    await this.driving;
    return this.tally.outcome();
  }

  async close(): Promise<void> {
    await Promise.all([...this.publishers, ...this.subscribers].map((c) => this.kit.close(c)));
  }
}

async function inBatches<T>(slice: Slice, make: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  for (let i = slice.from; i < slice.to; i += PARALLEL) {
    const batch = Array.from({ length: Math.min(PARALLEL, slice.to - i) }, (_, k) => make(i + k));
    out.push(...(await Promise.all(batch)));
  }
  return out;
}
