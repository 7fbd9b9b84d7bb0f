/**
 * `npm run device-key -- <name>`: prints the key a device needs for the
 * NIMBUS-HMAC-SHA256 authentication method, derived from AUTH_HMAC_SECRET (read
 * from the environment or from standard input). Give each device only its own
 * key; it connects with <name> as its user name (or as its client id, when it
 * sends no user name). Printed as base64 and as hex.
 */
import { readFileSync } from "node:fs";
import { deviceKey } from "../broker/auth/hmac-challenge.ts";
import { toBase64 } from "../broker/json.ts";

const [name] = process.argv.slice(2);
if (!name) {
  console.error("usage: AUTH_HMAC_SECRET=… npm run device-key -- <name>   (secret read from stdin if unset)");
  process.exit(2);
}
const secret = process.env.AUTH_HMAC_SECRET ?? readFileSync(0, "utf8").replace(/\r?\n$/, "");
const key = await deviceKey(secret, name);
console.log(`base64 ${toBase64(key)}`);
console.log(`hex    ${Buffer.from(key).toString("hex")}`);
