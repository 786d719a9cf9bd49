import { describe, expect, it } from 'vitest';
import { captureToken, splitToken, TOKEN_KEY } from './token';

class MemoryStorage {
  private items = new Map<string, string>();
  getItem(key: string) {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string) {
    this.items.set(key, value);
  }
}

function fakeHistory() {
  const replaced: string[] = [];
  return { replaced, history: { state: null, replaceState: (_s: unknown, _t: string, url: string) => replaced.push(url) } };
}

describe('splitToken', () => {
  it('separates the token from the other parameters', () => {
    expect(splitToken('?token=abc&x=1')).toEqual({ token: 'abc', rest: '?x=1' });
    expect(splitToken('?token=abc')).toEqual({ token: 'abc', rest: '' });
    expect(splitToken('?x=1')).toEqual({ token: null, rest: '?x=1' });
    expect(splitToken('')).toEqual({ token: null, rest: '' });
  });
});

describe('captureToken', () => {
  it('stores a token from the URL and removes it from the address bar', () => {
    const storage = new MemoryStorage();
    const { replaced, history } = fakeHistory();
    const location = { search: '?token=t1&x=2', pathname: '/u/alice', hash: '#top' };
    expect(captureToken(storage as unknown as Storage, location as Location, history as unknown as History)).toBe('t1');
    expect(storage.getItem(TOKEN_KEY)).toBe('t1');
    expect(replaced).toEqual(['/u/alice?x=2#top']);
  });

  it('keeps the stored token on later pages without one', () => {
    const storage = new MemoryStorage();
    storage.setItem(TOKEN_KEY, 'kept');
    const { replaced, history } = fakeHistory();
    const location = { search: '', pathname: '/ops', hash: '' };
    expect(captureToken(storage as unknown as Storage, location as Location, history as unknown as History)).toBe('kept');
    expect(replaced).toEqual([]);
  });
});
