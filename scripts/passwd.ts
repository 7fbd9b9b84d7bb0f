/**
 * Users and passwords, in the MQTT_PASSWORDS secret or in a running broker's user
 * store (docs/security.md, Authentication).
 *
 *   npm run passwd -- <user> [password]                  writes <user>'s entry into passwords.txt
 *   npm run passwd -- --api <url> <user> [password]      adds or replaces <user> in the store
 *   npm run passwd -- --api <url> --remove <user>
 *   npm run passwd -- --api <url> --show <user>
 *   npm run passwd -- --api <url> --list
 *   npm run passwd -- --api <url> --import <file>        the entries of a passwords file, 1,000 a call
 *
 * A password not given is read from standard input. It is hashed here (salted
 * PBKDF2-SHA256), so it never travels: the store receives the hash. The API's
 * bearer token is read from NIMBUS_API_TOKEN. Install a passwords file as the secret with
 *
 *   npx wrangler secret put MQTT_PASSWORDS < passwords.txt
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { hashPassword, passwordEntry } from "../broker/auth/passwords.ts";

const USAGE = `usage: npm run passwd -- <user> [password]                  (writes passwords.txt)
       npm run passwd -- --api <url> <user> [password]      (adds or replaces a user in the store)
       npm run passwd -- --api <url> --remove <user> | --show <user> | --list | --import <file>
The password is read from stdin if not given; the API token from NIMBUS_API_TOKEN.`;
/** Users an import sends a call (POST /api/users takes at most 1,000). */
const IMPORT_PAGE = 1000;

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    api: { type: "string" },
    remove: { type: "string" },
    show: { type: "string" },
    list: { type: "boolean" },
    import: { type: "string" },
  },
});

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

function readPassword(given: string | undefined): string {
  const password = given ?? readFileSync(0, "utf8").replace(/\r?\n$/, "");
  if (password === "") fail("empty password");
  return password;
}

/** A call to the broker's API; its JSON answer, or the error it gave, and exit. */
async function call(base: string, method: string, path: string, body?: unknown): Promise<unknown> {
  const token = process.env.NIMBUS_API_TOKEN;
  if (!token) fail("set NIMBUS_API_TOKEN to the broker's API_TOKEN");
  const res = await fetch(new URL(path, base), {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const answer: unknown = await res.json().catch(() => null);
  if (!res.ok) fail(`${method} ${path}: ${res.status} ${(answer as { error?: string } | null)?.error ?? ""}`);
  return answer;
}

const userPath = (name: string) => `/api/users/${encodeURIComponent(name)}`;

async function viaApi(base: string): Promise<void> {
  if (values.remove !== undefined) {
    await call(base, "DELETE", userPath(values.remove));
    console.log(`removed ${values.remove}`);
  } else if (values.show !== undefined) {
    console.log(JSON.stringify(await call(base, "GET", userPath(values.show))));
  } else if (values.list) {
    let cursor: string | null = "";
    while (cursor !== null) {
      const query: string = cursor === "" ? "" : `&cursor=${encodeURIComponent(cursor)}`;
      const page = (await call(base, "GET", `/api/users?limit=1000${query}`)) as {
        users: Array<{ name: string }>;
        next: string | null;
      };
      for (const u of page.users) console.log(u.name);
      cursor = page.next;
    }
  } else if (values.import !== undefined) {
    const users = readFileSync(values.import, "utf8")
      .split(/\s+/)
      .filter((line) => line.includes(":"))
      .map((line) => ({ name: line.slice(0, line.indexOf(":")), hash: line.slice(line.indexOf(":") + 1) }));
    for (let i = 0; i < users.length; i += IMPORT_PAGE) {
      await call(base, "POST", "/api/users", { users: users.slice(i, i + IMPORT_PAGE) });
    }
    console.log(`imported ${users.length} users from ${values.import}`);
  } else {
    const [user, given] = positionals;
    if (!user) fail(USAGE);
    const answer = (await call(base, "PUT", userPath(user), {
      hash: await hashPassword(readPassword(given)),
    })) as {
      created: boolean;
    };
    console.log(`${answer.created ? "added" : "replaced"} ${user}`);
  }
}

async function toFile(): Promise<void> {
  const [user, given] = positionals;
  const apiOnly = values.remove ?? values.show ?? values.import ?? (values.list ? "--list" : undefined);
  if (!user || apiOnly !== undefined || positionals.length > 2) fail(USAGE);
  const file = process.env.PASSWORD_FILE ?? "passwords.txt";
  const entry = await passwordEntry(user, readPassword(given)).catch((err: Error) => fail(err.message));
  const lines = existsSync(file)
    ? readFileSync(file, "utf8")
        .split(/\s+/)
        .filter((l) => l !== "" && !l.startsWith(`${user}:`))
    : [];
  lines.push(entry);
  writeFileSync(file, `${lines.join("\n")}\n`, { mode: 0o600 });
  console.log(`wrote ${user} to ${file}; install with: npx wrangler secret put MQTT_PASSWORDS < ${file}`);
}

await (values.api === undefined ? toFile() : viaApi(values.api));
