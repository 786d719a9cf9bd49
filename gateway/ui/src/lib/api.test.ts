import { afterEach, describe, expect, it, vi } from 'vitest';
import { api, ApiError } from './api';

afterEach(() => vi.unstubAllGlobals());

function stubFetch(status: number, body: string) {
  const fetchMock = vi.fn(async (_url: string, _init?: RequestInit) => new Response(body, { status }));
  vi.stubGlobal('fetch', fetchMock);
  return fetchMock;
}

describe('api', () => {
  it('pages a user feed with count and before, sending the token', async () => {
    const fetchMock = stubFetch(200, '{"entries":[]}');
    await api.userFeed('alice', '1000-0', 20, 'tok');
    const [url, init] = fetchMock.mock.calls[0]!;
    expect(url).toBe('/api/users/alice/feed?count=20&before=1000-0');
    expect(new Headers(init?.headers).get('Authorization')).toBe('Bearer tok');
  });

  it('sends no Authorization header without a token', async () => {
    const fetchMock = stubFetch(200, '{"entries":[]}');
    await api.topicFeed('sports', null, 20);
    const [url, init] = fetchMock.mock.calls[0]!;
    expect(url).toBe('/api/topics/sports/feed?count=20');
    expect(new Headers(init?.headers).has('Authorization')).toBe(false);
  });

  it('turns {"error": ...} replies into an ApiError with that message', async () => {
    stubFetch(400, '{"error":"unknown topic: x"}');
    const error = await api.setInterests('alice', ['x'], null).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ApiError);
    expect((error as ApiError).status).toBe(400);
    expect((error as ApiError).message).toBe('unknown topic: x');
  });

  it('reports a non-JSON failure by its status', async () => {
    stubFetch(502, '<html>bad gateway</html>');
    await expect(api.stats()).rejects.toThrow('502');
  });
});
