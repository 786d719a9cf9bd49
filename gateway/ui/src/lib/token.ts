// The access token of a gateway running with --auth-secret: given once as `?token=` in the link
// that opens the UI, then kept in sessionStorage (and out of the address bar, so it is not shared
// by copying the URL).

export const TOKEN_KEY = 'agentic-gateway.token';

/** The `token` parameter of a query string and the query string without it. */
export function splitToken(search: string): { token: string | null; rest: string } {
  const params = new URLSearchParams(search);
  const token = params.get('token');
  params.delete('token');
  const rest = params.toString();
  return { token: token || null, rest: rest ? `?${rest}` : '' };
}

/** Moves a `?token=` of the current URL into `storage`; returns the stored token. */
export function captureToken(storage: Storage, location: Location, history: History): string | null {
  const { token, rest } = splitToken(location.search);
  if (token) {
    storage.setItem(TOKEN_KEY, token);
    history.replaceState(history.state, '', `${location.pathname}${rest}${location.hash}`);
  }
  return storage.getItem(TOKEN_KEY);
}
