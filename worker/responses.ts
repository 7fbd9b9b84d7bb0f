/** JSON answers of the HTTP API; errors are {"error": "...", "status": n}. */

export function json(body: unknown, status = 200, extra: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body, null, 2), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...extra },
  });
}

export function apiError(status: number, error: string): Response {
  return json({ error, status }, status);
}
