/**
 * Which Gateway a WebSocket upgrade goes to, and the names of all of them
 * (DESIGN.md, "Placement"). "random" and "ip" spread sockets over `gateway-0` …
 * `gateway-{GATEWAYS-1}`, each object living wherever its first request came from;
 * "region" keeps a set of gateways per region, `gateway-{region}-{n}`, each created
 * with its region as Durable Objects' location hint, and sends a client to one of
 * the configured region nearest to where Cloudflare says the request comes from.
 */
import { fnv1a, gatewayName } from "./routing.ts";

/**
 * Durable Objects' location hints (Cloudflare docs, "Data location", read
 * 2026-12-03). A hint is best effort and counts only when the object is created;
 * objects hinted to sam, afr or me are created in a nearby region that has Durable
 * Objects (South America: Eastern North America).
 */
export const REGIONS = [
  "wnam",
  "enam",
  "sam",
  "weur",
  "eeur",
  "apac",
  "apac-ne",
  "apac-se",
  "oc",
  "afr",
  "me",
] as const satisfies readonly DurableObjectLocationHint[];

export type Region = (typeof REGIONS)[number];

export function isRegion(s: string): s is Region {
  return (REGIONS as readonly string[]).includes(s);
}

export interface RegionGateways {
  region: Region;
  /** Gateways of this region: `gateway-{region}-0` … `gateway-{region}-{gateways-1}`. */
  gateways: number;
}

/** GATEWAY_POLICY (and, for "region", GATEWAY_REGIONS), checked. */
export type GatewayPlacement =
  | { policy: "random" }
  | { policy: "ip" }
  /** The first region also takes clients whose place is unknown. */
  | { policy: "region"; regions: readonly [RegionGateways, ...RegionGateways[]] };

/** What a pick needs of an upgrade request: where Cloudflare says it comes from (`request.cf`), and its address. */
export interface ClientPlace {
  /** `cf.continent`: AF, AN, AS, EU, NA, OC or SA. */
  continent?: string | undefined;
  /** `cf.country`, ISO 3166-1 alpha-2. */
  country?: string | undefined;
  /** `cf.longitude`, degrees east, as Cloudflare gives it (a string). */
  longitude?: string | undefined;
  /** CF-Connecting-IP. */
  address: string;
}

export interface GatewayPick {
  name: string;
  /** Passed to `get()`: only the call that creates the object heeds it. */
  locationHint?: Region;
}

// Countries of continent AS that Cloudflare's regions split off from "apac".
const MIDDLE_EAST = new Set([
  "AE",
  "BH",
  "CY",
  "IL",
  "IQ",
  "IR",
  "JO",
  "KW",
  "LB",
  "OM",
  "PS",
  "QA",
  "SA",
  "SY",
  "TR",
  "YE",
]);
const NORTHEAST_ASIA = new Set(["CN", "HK", "JP", "KP", "KR", "MN", "MO", "TW"]);
const SOUTHEAST_ASIA = new Set(["BN", "ID", "KH", "LA", "MM", "MY", "PH", "SG", "TH", "TL", "VN"]);
/** Where western and eastern North America (and Europe) are split, degrees east. */
const NORTH_AMERICA_SPLIT = -100;
const EUROPE_SPLIT = 20;

/** The region a client is in, from the request's continent, country and longitude; undefined when unknown. */
export function homeRegion(place: ClientPlace): Region | undefined {
  const longitude = place.longitude === undefined ? Number.NaN : Number(place.longitude);
  switch (place.continent) {
    case "NA":
      return longitude < NORTH_AMERICA_SPLIT ? "wnam" : "enam";
    case "SA":
      return "sam";
    case "EU":
      return longitude >= EUROPE_SPLIT ? "eeur" : "weur";
    case "AS": {
      const country = place.country ?? "";
      if (MIDDLE_EAST.has(country)) return "me";
      if (NORTHEAST_ASIA.has(country)) return "apac-ne";
      if (SOUTHEAST_ASIA.has(country)) return "apac-se";
      return "apac";
    }
    case "OC":
      return "oc";
    case "AF":
      return "afr";
    default:
      // AN (Antarctica), T1 (Tor) and requests without cf: no region of their own.
      return undefined;
  }
}

/**
 * Every region, nearest first, from each region: by geography, not measured. A
 * client goes to the first of its list that has gateways configured.
 */
export const NEAREST: Readonly<Record<Region, readonly Region[]>> = {
  wnam: ["wnam", "enam", "sam", "apac-ne", "apac", "oc", "weur", "apac-se", "eeur", "me", "afr"],
  enam: ["enam", "wnam", "sam", "weur", "eeur", "afr", "me", "apac-ne", "apac", "apac-se", "oc"],
  sam: ["sam", "enam", "wnam", "weur", "afr", "eeur", "me", "oc", "apac-ne", "apac", "apac-se"],
  weur: ["weur", "eeur", "afr", "me", "enam", "wnam", "sam", "apac", "apac-se", "apac-ne", "oc"],
  eeur: ["eeur", "weur", "me", "afr", "apac", "enam", "apac-se", "apac-ne", "wnam", "sam", "oc"],
  apac: ["apac", "apac-se", "apac-ne", "oc", "me", "eeur", "weur", "afr", "wnam", "enam", "sam"],
  "apac-ne": ["apac-ne", "apac", "apac-se", "oc", "wnam", "eeur", "me", "weur", "enam", "afr", "sam"],
  "apac-se": ["apac-se", "apac", "apac-ne", "oc", "me", "eeur", "weur", "afr", "wnam", "enam", "sam"],
  oc: ["oc", "apac-se", "apac", "apac-ne", "wnam", "enam", "sam", "me", "eeur", "weur", "afr"],
  afr: ["afr", "weur", "me", "eeur", "enam", "sam", "apac", "apac-se", "wnam", "apac-ne", "oc"],
  me: ["me", "eeur", "weur", "afr", "apac", "apac-se", "apac-ne", "enam", "oc", "wnam", "sam"],
};

/** The configured region a client is sent to: the nearest to its own, or the first configured. */
export function regionFor(
  place: ClientPlace,
  regions: readonly [RegionGateways, ...RegionGateways[]],
): RegionGateways {
  const home = homeRegion(place);
  if (home !== undefined) {
    for (const r of NEAREST[home]) {
      const configured = regions.find((g) => g.region === r);
      if (configured !== undefined) return configured;
    }
  }
  return regions[0];
}

export function regionGatewayName(region: Region, index: number): string {
  return `gateway-${region}-${index}`;
}

/**
 * The gateway for an upgrade. `random` is a number in [0, 1) (Math.random() in
 * the Worker; fixed in tests): which gateway of the pool, for "random" and "region".
 */
export function pickGateway(
  placement: GatewayPlacement,
  gateways: number,
  place: ClientPlace,
  random: number,
): GatewayPick {
  const of = (count: number) => Math.min(count - 1, Math.floor(random * count));
  switch (placement.policy) {
    case "random":
      return { name: gatewayName(of(gateways)) };
    case "ip":
      return { name: gatewayName(fnv1a(place.address) % gateways) };
    case "region": {
      const { region, gateways: count } = regionFor(place, placement.regions);
      return { name: regionGatewayName(region, of(count)), locationHint: region };
    }
  }
}

/** The name of every gateway a pick can return: what statistics and fan-outs to all gateways must call. */
export function gatewayNames(config: { placement: GatewayPlacement; gateways: number }): string[] {
  if (config.placement.policy !== "region")
    return Array.from({ length: config.gateways }, (_, i) => gatewayName(i));
  return config.placement.regions.flatMap(({ region, gateways }) =>
    Array.from({ length: gateways }, (_, i) => regionGatewayName(region, i)),
  );
}

/**
 * GATEWAY_REGIONS: regions separated by commas, each with its number of gateways
 * (`enam:8`) or without one (then `perRegion`, GATEWAYS). The first listed also
 * takes clients whose place is unknown.
 */
export function parseGatewayRegions(
  value: string,
  perRegion: number,
  maxPerRegion: number,
): { regions: RegionGateways[]; problems: string[] } {
  const regions: RegionGateways[] = [];
  const problems: string[] = [];
  for (const item of value.split(",").map((s) => s.trim())) {
    if (item === "") continue;
    const [name = "", count, ...rest] = item.split(":").map((s) => s.trim());
    if (!isRegion(name) || rest.length > 0) {
      problems.push(
        `GATEWAY_REGIONS: "${item}" is not a region (one of ${REGIONS.join(", ")}), optionally :count`,
      );
      continue;
    }
    const gateways = count === undefined ? perRegion : Number(count);
    if (
      count !== undefined &&
      (count === "" || !Number.isInteger(gateways) || gateways < 1 || gateways > maxPerRegion)
    ) {
      problems.push(`GATEWAY_REGIONS: "${item}": the count is not a whole number from 1 to ${maxPerRegion}`);
      continue;
    }
    if (regions.some((r) => r.region === name)) {
      problems.push(`GATEWAY_REGIONS: ${name} is listed twice`);
      continue;
    }
    regions.push({ region: name, gateways });
  }
  if (regions.length === 0 && problems.length === 0) problems.push("GATEWAY_REGIONS lists no region");
  return { regions, problems };
}
