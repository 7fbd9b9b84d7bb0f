/** JSON that keeps Uint8Array values (as base64), for SQLite text columns. */

export function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

export function fromBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Base64url without padding (RFC 4648 section 5), as JWTs and cookies carry bytes. */
export function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Bytes of base64url, padded or not; throws on characters outside its alphabet. */
export function fromBase64Url(s: string): Uint8Array {
  const b64 = s.replace(/-/g, "+").replace(/_/g, "/");
  return fromBase64(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
}

export function stringify(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => (v instanceof Uint8Array ? { $b64: toBase64(v) } : v));
}

export function parse<T>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) =>
    v !== null && typeof v === "object" && "$b64" in v ? fromBase64((v as { $b64: string }).$b64) : v,
  ) as T;
}

/**
 * A setting that holds a JSON array of named entries (RULES, BRIDGES): each entry
 * parsed by `parse` (a string is its problem) and named once; every problem found.
 */
export function namedListSetting<T extends { name: string }>(
  setting: string,
  text: string | undefined,
  max: number,
  parse: (entry: unknown, at: string) => T | string,
): { items: T[]; problems: string[] } {
  if (text === undefined || text.trim() === "") return { items: [], problems: [] };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { items: [], problems: [`${setting} is not JSON: ${(err as Error).message}`] };
  }
  if (!Array.isArray(raw)) return { items: [], problems: [`${setting} must be a JSON array`] };
  if (raw.length > max)
    return { items: [], problems: [`${setting} has ${raw.length} entries; at most ${max}`] };
  const items: T[] = [];
  const problems: string[] = [];
  raw.forEach((entry: unknown, i) => {
    const parsed = parse(entry, `${setting}[${i}]`);
    if (typeof parsed === "string") problems.push(parsed);
    else if (items.some((x) => x.name === parsed.name))
      problems.push(`${setting}[${i}]: the name "${parsed.name}" is used twice`);
    else items.push(parsed);
  });
  return { items, problems };
}
