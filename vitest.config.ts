import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

/**
 * End-to-end tests run twice: one shard and one gateway, and four shards and three
 * gateways. The security and wire-fuzzing suites start brokers of their own with
 * fixed settings, so they run once.
 */
const OWN_BROKER = [
  "test/e2e/security.test.ts",
  "test/e2e/fuzz-wire.test.ts",
  "test/e2e/identity.test.ts",
  "test/e2e/upgrade.test.ts",
  "test/e2e/reshard.test.ts",
  "test/e2e/integrations.test.ts",
  "test/e2e/bridge.test.ts",
  "test/e2e/users.test.ts",
  "test/e2e/upgrade-logins.test.ts",
  "test/e2e/presence.test.ts",
  "test/e2e/acl-change.test.ts",
  "test/e2e/qos2-window.test.ts",
  "test/e2e/subscribe-rate.test.ts",
];
/**
 * Heavy, against a broker of their own (floods, bursts shaped to the rate, a 1 GiB
 * queue): run after everything else, one file at a time, so that other suites do
 * not share the two cores with them. They run once.
 */
const ALONE = ["test/e2e/overload.test.ts", "test/e2e/burst.test.ts", "test/e2e/handover.test.ts"];
/** The browser test drives the console once; the broker behind it is the same either way. */
const ONCE = [...OWN_BROKER, "test/e2e/console.test.ts"];
const e2e = (name: string, exclude: string[] = []) => ({
  test: {
    name,
    include: ["test/e2e/**/*.test.ts"],
    exclude: [...ALONE, ...exclude],
    environment: "node",
    globalSetup: ["test/e2e/global-setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 90_000,
  },
});

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        // Inside workerd, with the bindings of wrangler.toml: Durable Object tests.
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ALLOW_ANONYMOUS: "true",
                AUTH_HMAC_SECRET: "runtime-secret",
                API_TOKEN: "runtime-token",
                // Client certificates from request.cf name principals (upgrade-logins.ts).
                CLIENT_CERT_PRINCIPAL: "cn",
              },
            },
          }),
        ],
        test: {
          name: "runtime",
          include: ["test/runtime/**/*.test.ts"],
        },
      },
      e2e("e2e-1x1"),
      e2e("e2e-4x3", ONCE),
      {
        test: {
          name: "e2e-alone",
          include: ALONE,
          environment: "node",
          fileParallelism: false,
          sequence: { groupOrder: 1 },
          testTimeout: 60_000,
          hookTimeout: 90_000,
        },
      },
    ],
  },
});
