// When and where a feed socket reconnects: back off 0.5 s, 1 s, 2 s ... up to 10 s, and resume
// after the newest entry seen so the gateway sends no gap and no duplicate.

export const FIRST_RETRY_MS = 500;
export const MAX_RETRY_MS = 10_000;

/** The wait before reconnect attempt number `attempt` (0 for the first retry after a drop). */
export function backoffDelay(attempt: number): number {
  return Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** Math.max(0, attempt));
}

interface PageLocation {
  protocol: string;
  host: string;
}

/**
 * The WebSocket URL of `path` on the page's own host (wss:// under https), with `after` to resume
 * and `token` when the feed needs one.
 */
export function socketUrl(location: PageLocation, path: string, params: { after?: string | null; token?: string | null } = {}): string {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = new URLSearchParams();
  if (params.after) query.set('after', params.after);
  if (params.token) query.set('token', params.token);
  const search = query.toString();
  return `${scheme}//${location.host}${path}${search ? `?${search}` : ''}`;
}
