/**
 * A request body read as JSON, at most `maxBytes` of it: a Content-Length past
 * the bound is refused before anything is read, and a body without one is read
 * only until it passes the bound. The Worker's memory is shared by the requests
 * of its isolate; what a caller sends must not decide how much of it is used.
 */
import { readBounded } from "../broker/bounded-read.ts";
import { apiError } from "./responses.ts";

export type BodyResult = { ok: true; value: unknown } | { ok: false; response: Response };

export async function boundedJson(request: Request, maxBytes: number): Promise<BodyResult> {
  const tooLarge = (): BodyResult => ({
    ok: false,
    response: apiError(413, `the body is larger than ${maxBytes} bytes`),
  });
  const declared = request.headers.get("content-length");
  if (declared !== null && Number(declared) > maxBytes) return tooLarge();
  const bytes = await readBounded(request.body, maxBytes);
  if (bytes === undefined) return tooLarge();
  try {
    return {
      ok: true,
      value: JSON.parse(new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes)),
    };
  } catch {
    return { ok: false, response: apiError(400, "the body must be JSON (UTF-8)") };
  }
}
