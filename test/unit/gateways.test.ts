/**
 * Which gateway an upgrade goes to (broker/gateways.ts, DESIGN.md "Placement"),
 * and the settings that choose the policy and bound the number of objects
 * (broker/config.ts): every bound is reached, and refused one past it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  MAX_GATEWAYS,
  readConfig,
  SUBREQUESTS_FREE,
  SUBREQUESTS_MAX,
  SUBREQUESTS_PAID_DEFAULT,
} from "../../broker/config.ts";
import {
  type ClientPlace,
  gatewayNames,
  homeRegion,
  NEAREST,
  pickGateway,
  REGIONS,
  type Region,
} from "../../broker/gateways.ts";

/** The problems readConfig finds with `env`; none if it accepts it. */
function problems(env: Record<string, string>): string[] {
  try {
    readConfig(env);
    return [];
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
}

const region = (list: string, extra: Record<string, string> = {}) =>
  readConfig({ GATEWAY_POLICY: "region", GATEWAY_REGIONS: list, ...extra });

const SYDNEY: ClientPlace = { continent: "OC", country: "AU", longitude: "151.2", address: "203.0.113.7" };
const pick = (list: string, place: ClientPlace, random = 0) => {
  const config = region(list);
  return pickGateway(config.placement, config.gateways, place, random);
};

describe("the client's own region, from request.cf", () => {
  it("splits North America and Europe by longitude, Asia by country", () => {
    const at = (continent: string, extra: Partial<ClientPlace> = {}) =>
      homeRegion({ continent, address: "", ...extra });
    expect(at("NA", { longitude: "-122.4" })).toBe("wnam"); // San Francisco
    expect(at("NA", { longitude: "-77.0" })).toBe("enam"); // Washington
    expect(at("NA")).toBe("enam"); // no longitude
    expect(at("SA", { country: "BR" })).toBe("sam");
    expect(at("EU", { longitude: "2.35" })).toBe("weur"); // Paris
    expect(at("EU", { longitude: "21.0" })).toBe("eeur"); // Warsaw
    expect(at("EU")).toBe("weur");
    expect(at("AS", { country: "AE" })).toBe("me");
    expect(at("AS", { country: "JP" })).toBe("apac-ne");
    expect(at("AS", { country: "SG" })).toBe("apac-se");
    expect(at("AS", { country: "IN" })).toBe("apac");
    expect(at("OC", { country: "AU" })).toBe("oc");
    expect(at("AF", { country: "ZA" })).toBe("afr");
  });

  it("has none for Antarctica, Tor, a request without cf or a code it does not know", () => {
    for (const continent of ["AN", "T1", "XX", "", undefined])
      expect(homeRegion({ continent, address: "198.51.100.1" })).toBeUndefined();
  });
});

describe("GATEWAY_POLICY=region", () => {
  it("every region is a Durable Objects location hint, and a gateway there is created with it", () => {
    for (const r of REGIONS) {
      const config = region(`${r}:3`);
      for (const random of [0, 0.5, 0.999999]) {
        const got = pickGateway(config.placement, config.gateways, SYDNEY, random);
        expect(got.locationHint).toBe(r);
        expect(got.name).toBe(`gateway-${r}-${Math.floor(random * 3)}`);
      }
    }
  });

  it("from every region, every region is somewhere in the order of nearness, its own first", () => {
    for (const r of REGIONS) {
      expect(NEAREST[r][0]).toBe(r);
      expect([...NEAREST[r]].sort()).toEqual([...REGIONS].sort());
    }
  });

  it("sends a client in Sydney to Oceania's gateways, and to the nearest configured region without them", () => {
    expect(pick("enam:4,weur:4,oc:2", SYDNEY, 0.7)).toEqual({ name: "gateway-oc-1", locationHint: "oc" });
    expect(pick("enam:4,weur:4,apac:2", SYDNEY)).toEqual({ name: "gateway-apac-0", locationHint: "apac" });
    expect(pick("weur,enam", { continent: "AF", country: "ZA", address: "" }).name).toBe("gateway-weur-0");
    expect(pick("wnam,apac", { continent: "SA", country: "BR", address: "" }).name).toBe("gateway-wnam-0");
  });

  it("sends a client whose place is unknown to the first region listed", () => {
    for (const continent of ["AN", "XX", undefined])
      expect(pick("weur:2,enam:2,oc:1", { continent, address: "" })).toEqual({
        name: "gateway-weur-0",
        locationHint: "weur",
      });
  });

  it("is deterministic, and picks only gateways that exist, with the hint of their own region", () => {
    const regions = fc
      .uniqueArray(fc.constantFrom(...REGIONS), { minLength: 1, maxLength: REGIONS.length })
      .chain((rs) => fc.tuple(...rs.map((r) => fc.tuple(fc.constant(r), fc.integer({ min: 1, max: 5 })))));
    const place = fc.record({
      continent: fc.option(fc.constantFrom("AF", "AN", "AS", "EU", "NA", "OC", "SA", "T1"), {
        nil: undefined,
      }),
      country: fc.option(fc.constantFrom("AE", "AU", "BR", "CN", "DE", "IN", "JP", "SG", "US", "ZA"), {
        nil: undefined,
      }),
      longitude: fc.option(fc.double({ min: -180, max: 180, noNaN: true }).map(String), { nil: undefined }),
      address: fc.ipV4(),
    });
    fc.assert(
      fc.property(
        regions,
        place,
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (rs, p, r) => {
          const config = region(rs.map(([name, n]) => `${name}:${n}`).join(","));
          const got = pickGateway(config.placement, config.gateways, p, r);
          expect(pickGateway(config.placement, config.gateways, p, r)).toEqual(got);
          expect(gatewayNames(config)).toContain(got.name);
          expect(got.name.startsWith(`gateway-${got.locationHint as Region}-`)).toBe(true);
          expect(gatewayNames(config)).toHaveLength(config.gateways);
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it("names every gateway of every region once, the total in config.gateways; a region without a count has GATEWAYS", () => {
    const config = region("oc:2,enam", { GATEWAYS: "3" });
    expect(config.gateways).toBe(5);
    expect(gatewayNames(config)).toEqual([
      "gateway-oc-0",
      "gateway-oc-1",
      "gateway-enam-0",
      "gateway-enam-1",
      "gateway-enam-2",
    ]);
  });

  it("refuses a list that is not one, and a list without the policy", () => {
    expect(problems({ GATEWAY_POLICY: "region" })).toEqual([
      "GATEWAY_POLICY=region needs GATEWAY_REGIONS (e.g. enam:4,weur:4,oc:1)",
    ]);
    expect(problems({ GATEWAY_POLICY: "region", GATEWAY_REGIONS: "mars:2" })[0]).toMatch(
      /"mars:2" is not a region/,
    );
    expect(problems({ GATEWAY_POLICY: "region", GATEWAY_REGIONS: "oc:0" })[0]).toMatch(
      /not a whole number from 1/,
    );
    expect(problems({ GATEWAY_POLICY: "region", GATEWAY_REGIONS: "oc:1.5" })[0]).toMatch(
      /not a whole number/,
    );
    expect(problems({ GATEWAY_POLICY: "region", GATEWAY_REGIONS: "oc:" })[0]).toMatch(/not a whole number/);
    expect(problems({ GATEWAY_POLICY: "region", GATEWAY_REGIONS: "oc:1:2" })[0]).toMatch(/is not a region/);
    expect(problems({ GATEWAY_POLICY: "region", GATEWAY_REGIONS: "oc,weur,oc:3" })).toEqual([
      "GATEWAY_REGIONS: oc is listed twice",
    ]);
    expect(problems({ GATEWAY_POLICY: "region", GATEWAY_REGIONS: " , " })).toEqual([
      "GATEWAY_REGIONS lists no region",
    ]);
    expect(problems({ GATEWAY_REGIONS: "oc" })).toEqual([
      "GATEWAY_REGIONS is used only with GATEWAY_POLICY=region (it is random)",
    ]);
    expect(problems({ GATEWAY_POLICY: "nearest" })).toEqual([
      "GATEWAY_POLICY=nearest is not random, ip or region",
    ]);
  });

  it("allows 4,096 gateways in all, and refuses one more", () => {
    const at = (total: number) => ({
      GATEWAY_POLICY: "region",
      GATEWAY_REGIONS: `enam:${MAX_GATEWAYS},weur:${total - MAX_GATEWAYS}`.replace(/,weur:0$/, ""),
      SUBREQUEST_LIMIT: String(SUBREQUESTS_PAID_DEFAULT),
    });
    expect(readConfig(at(MAX_GATEWAYS)).gateways).toBe(MAX_GATEWAYS);
    expect(problems(at(MAX_GATEWAYS + 1))).toEqual([
      `GATEWAY_REGIONS: 4097 gateways in all, more than ${MAX_GATEWAYS}`,
    ]);
    expect(problems({ GATEWAY_POLICY: "region", GATEWAY_REGIONS: `oc:${MAX_GATEWAYS + 1}` })[0]).toMatch(
      /from 1 to 4096/,
    );
  });
});

describe("GATEWAY_POLICY random and ip, as before", () => {
  it("random spreads over gateway-0 … gateway-{GATEWAYS-1}, without a hint", () => {
    const config = readConfig({ GATEWAYS: "4" });
    expect(config.placement).toEqual({ policy: "random" });
    const names = [0, 0.25, 0.5, 0.999999].map((r) => pickGateway(config.placement, 4, SYDNEY, r));
    expect(names).toEqual(["gateway-0", "gateway-1", "gateway-2", "gateway-3"].map((name) => ({ name })));
    expect(gatewayNames(config)).toEqual(["gateway-0", "gateway-1", "gateway-2", "gateway-3"]);
    expect(pickGateway(readConfig({}).placement, 1, SYDNEY, 0.9)).toEqual({ name: "gateway-0" });
  });

  it("ip keeps one address on one gateway whatever the random number, and spreads addresses", () => {
    const config = readConfig({ GATEWAYS: "8", GATEWAY_POLICY: "ip" });
    const of = (address: string, r: number) =>
      pickGateway(config.placement, config.gateways, { ...SYDNEY, address }, r).name;
    expect(of("192.0.2.1", 0)).toBe(of("192.0.2.1", 0.99));
    const seen = new Set(Array.from({ length: 200 }, (_, i) => of(`10.0.${i >> 8}.${i & 255}`, 0)));
    expect(seen.size).toBe(8);
  });
});

describe("the number of objects, bounded by the subrequest limit", () => {
  // Statistics (/api/stats, /metrics, $SYS) call every gateway and every shard from one request.
  it("by default allows gateways and shards up to Workers Free's 1,000 calls, and refuses one more", () => {
    expect(readConfig({}).subrequestLimit).toBe(SUBREQUESTS_FREE);
    expect(readConfig({ GATEWAYS: "976", TOPIC_SHARDS: "24" }).gateways).toBe(976);
    const over = problems({ GATEWAYS: "977", TOPIC_SHARDS: "24" });
    expect(over).toHaveLength(1);
    expect(over[0]).toMatch(/^977 gateways and 24 topic shards are 1001 calls from one request/);
    expect(over[0]).toMatch(/more than SUBREQUEST_LIMIT=1000: Workers Free allows 1,000 .* Paid 10,000/);
  });

  it("counts every region's gateways", () => {
    expect(problems({ GATEWAY_POLICY: "region", GATEWAY_REGIONS: "enam:600,weur:400" })[0]).toMatch(
      /^1000 gateways and 1 topic shards are 1001 calls/,
    );
  });

  it("with the Paid plan's limit allows the most of each class: 4,096 gateways and 1,024 shards", () => {
    const paid = { SUBREQUEST_LIMIT: String(SUBREQUESTS_PAID_DEFAULT) };
    const config = readConfig({ ...paid, GATEWAYS: "4096", TOPIC_SHARDS: "1024" });
    expect(config.gateways + config.layout.shards).toBe(5120);
    expect(problems({ ...paid, GATEWAYS: "4097" })[0]).toMatch(
      /^GATEWAYS=4097 is not a whole number from 1 to 4096/,
    );
    expect(problems({ ...paid, TOPIC_SHARDS: "1025" })[0]).toMatch(/^TOPIC_SHARDS=1025 .* from 1 to 1024/);
    expect(problems({ SUBREQUEST_LIMIT: "5000", GATEWAYS: "4096", TOPIC_SHARDS: "1024" })[0]).toMatch(
      /are 5120 calls from one request/,
    );
  });

  it("takes a limit up to 10 million, what wrangler's [limits] subrequests allows", () => {
    expect(readConfig({ SUBREQUEST_LIMIT: String(SUBREQUESTS_MAX) }).subrequestLimit).toBe(SUBREQUESTS_MAX);
    expect(problems({ SUBREQUEST_LIMIT: String(SUBREQUESTS_MAX + 1) })[0]).toMatch(
      /^SUBREQUEST_LIMIT=10000001 is not a whole number from 1 to 10000000 \(Workers Free: 1,000/,
    );
  });
});
