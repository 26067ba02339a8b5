/** What a failed Kubernetes API call says, read the same way by every adapter here. */
/**
 * The HTTP status of a failed API call: client-node's ApiException carries it as `code`,
 * its Watch as `statusCode`; undefined when the call never got an answer.
 */
export function statusCode(err: unknown): number | undefined {
  const e = err as { statusCode?: unknown; code?: unknown } | null;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code;
  return undefined;
}

/** One line a person can act on: the API server's own message, not the client's dump of headers. */
export function apiFailure(what: string, e: unknown): Error {
  const code = statusCode(e);
  if (code === undefined) return new Error(`${what} failed: ${(e as Error)?.message ?? String(e)}`);
  let message = '';
  try {
    const body = (e as { body?: unknown }).body;
    message = (typeof body === 'string' ? (JSON.parse(body) as { message?: string }) : (body as { message?: string }))?.message ?? '';
  } catch {
    // not a Status body
  }
  const hint = code === 403 ? ' (check the chart RBAC for the service account)' : '';
  return new Error(`${what} failed: HTTP ${code}${message ? `: ${message}` : ''}${hint}`);
}
