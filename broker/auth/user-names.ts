/**
 * Which user names the user store takes. MQTT lets a user name be any UTF-8
 * string; the store takes those a person could type and a log can show: 1 to
 * MAX_USER_NAME_BYTES bytes, no control characters (MQTT 5.0 1.5.4: they SHOULD
 * NOT be sent), and no lone surrogates (not UTF-8 at all). `/`, `+`, `#` and `%`
 * are ordinary characters here: an ACL pattern never substitutes a name that has
 * them (README, Principals), and the HTTP API takes a name percent-encoded.
 */
import { utf8Length } from "../../mqtt/wire/utf8.ts";
import { hasControlCharacters } from "../client-ids.ts";

/** Longest user name in the store, UTF-8 bytes (a key in every lookup, and in logs). */
export const MAX_USER_NAME_BYTES = 256;

/** What is wrong with `name` as a stored user's name; null: nothing. */
export function userNameProblem(name: string): string | null {
  if (name === "") return "a user name is not empty";
  const bytes = utf8Length(name);
  if (bytes > MAX_USER_NAME_BYTES) return `user name of ${bytes} bytes; at most ${MAX_USER_NAME_BYTES}`;
  if (hasControlCharacters(name)) return "a user name has no control characters";
  if (hasLoneSurrogate(name)) return "a user name is well-formed Unicode";
  return null;
}

function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    const next = s.charCodeAt(i + 1);
    if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return true;
    i++;
  }
  return false;
}
