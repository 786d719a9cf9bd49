// Calls to the gateway's HTTP API (gateway/API.md). User calls carry the token when auth is on.
import type { Entry, GatewayConfig, Stats, Topic } from './types';

/** A non-2xx reply; `message` is the gateway's `{"error": ...}` when it sent one. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function request<T>(path: string, init: RequestInit = {}, token: string | null = null): Promise<T> {
  const headers = new Headers(init.headers);
  if (token) headers.set('Authorization', `Bearer ${token}`);
  const response = await fetch(path, { ...init, headers });
  const body = await response.text();
  let json: unknown = null;
  try {
    json = body ? JSON.parse(body) : null;
  } catch {
    // Not JSON (a proxy's error page): reported below with the status.
  }
  if (!response.ok) {
    const error = (json as { error?: unknown } | null)?.error;
    throw new ApiError(response.status, typeof error === 'string' ? error : `${response.status} ${response.statusText}`.trim());
  }
  if (json === null) throw new ApiError(response.status, `${path}: the reply is not JSON`);
  return json as T;
}

const userPath = (user: string) => `/api/users/${encodeURIComponent(user)}`;

function feedQuery(count: number, before: string | null): string {
  const query = new URLSearchParams({ count: String(count) });
  if (before) query.set('before', before);
  return query.toString();
}

export const api = {
  config: () => request<GatewayConfig>('/api/config'),

  topics: async () => (await request<{ topics: Topic[] }>('/api/topics')).topics,

  interests: async (user: string, token: string | null) =>
    (await request<{ interests: string[] }>(`${userPath(user)}/interests`, {}, token)).interests,

  setInterests: async (user: string, interests: string[], token: string | null) =>
    (
      await request<{ interests: string[] }>(
        `${userPath(user)}/interests`,
        { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ interests }) },
        token,
      )
    ).interests,

  userFeed: async (user: string, before: string | null, count: number, token: string | null) =>
    (await request<{ entries: Entry[] }>(`${userPath(user)}/feed?${feedQuery(count, before)}`, {}, token)).entries,

  topicFeed: async (slug: string, before: string | null, count: number) =>
    (await request<{ entries: Entry[] }>(`/api/topics/${encodeURIComponent(slug)}/feed?${feedQuery(count, before)}`)).entries,

  stats: () => request<Stats>('/api/stats'),
};

/** A message for any error thrown by these calls. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
