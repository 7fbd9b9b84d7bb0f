/**
 * `npm run passwd -- <user> [password]`: writes a salted PBKDF2-SHA256 entry for
 * <user> into passwords.txt (replacing an older one), reading the password from
 * standard input when it is not given. Install the file as the broker's secret:
 *
 *   npx wrangler secret put MQTT_PASSWORDS < passwords.txt
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { passwordEntry } from "../broker/auth/passwords.ts";

const [user, given] = process.argv.slice(2);
const file = process.env.PASSWORD_FILE ?? "passwords.txt";
if (!user) {
  console.error("usage: npm run passwd -- <user> [password]   (password read from stdin if omitted)");
  process.exit(2);
}
const password = given ?? readFileSync(0, "utf8").replace(/\r?\n$/, "");
if (password === "") {
  console.error("empty password");
  process.exit(2);
}
const lines = existsSync(file)
  ? readFileSync(file, "utf8")
      .split(/\s+/)
      .filter((l) => l !== "" && !l.startsWith(`${user}:`))
  : [];
lines.push(await passwordEntry(user, password));
writeFileSync(file, `${lines.join("\n")}\n`, { mode: 0o600 });
console.log(`wrote ${user} to ${file}; install with: npx wrangler secret put MQTT_PASSWORDS < ${file}`);
