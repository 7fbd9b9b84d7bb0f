/**
 * The cursor of a listing that walks numbered objects in turn (users over their
 * buckets, clients over the gateways): the object to ask next and the last key
 * it returned, as base64url JSON. Opaque to callers; read back strictly, since
 * anyone holding the API token can hand in any string.
 */
import { fromBase64, toBase64 } from "../broker/json.ts";

export interface PageCursor {
  /** Which object the next page starts at. */
  index: number;
  /** The last key that object returned (the next page starts after it); null: from its first. */
  after: string | null;
}

export function writePageCursor({ index, after }: PageCursor): string {
  const text = toBase64(new TextEncoder().encode(JSON.stringify([index, after])));
  return text.replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** The cursor `text` holds, if it is one for `objects` objects whose key `keyOk` accepts. */
export function readPageCursor(
  text: string,
  objects: number,
  keyOk: (key: string) => boolean,
): PageCursor | undefined {
  try {
    const bytes = fromBase64(text.replaceAll("-", "+").replaceAll("_", "/"));
    const value: unknown = JSON.parse(
      new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes),
    );
    if (!Array.isArray(value) || value.length !== 2) return undefined;
    const [index, after] = value as [unknown, unknown];
    if (typeof index !== "number" || !Number.isInteger(index) || index < 0 || index >= objects)
      return undefined;
    if (after !== null && (typeof after !== "string" || !keyOk(after))) return undefined;
    return { index, after };
  } catch {
    return undefined;
  }
}
