import { describe, expect, it } from 'vitest';
import { backoffDelay, socketUrl } from './reconnect';

describe('backoffDelay', () => {
  it('starts at 0.5 s, doubles and stays at 10 s', () => {
    const delays = Array.from({ length: 9 }, (_, attempt) => backoffDelay(attempt));
    expect(delays).toEqual([500, 1000, 2000, 4000, 8000, 10000, 10000, 10000, 10000]);
  });

  it('does not overflow on a long outage', () => {
    expect(backoffDelay(5000)).toBe(10000);
  });
});

describe('socketUrl', () => {
  const http = { protocol: 'http:', host: 'localhost:8080' };

  it('uses ws:// under http and wss:// under https', () => {
    expect(socketUrl(http, '/ws/users/alice')).toBe('ws://localhost:8080/ws/users/alice');
    expect(socketUrl({ protocol: 'https:', host: 'news.example' }, '/ws/topics/sports')).toBe('wss://news.example/ws/topics/sports');
  });

  it('resumes after the newest id seen and carries the token', () => {
    expect(socketUrl(http, '/ws/users/alice', { after: '1764172800123-0', token: 'a b+c' })).toBe(
      'ws://localhost:8080/ws/users/alice?after=1764172800123-0&token=a+b%2Bc',
    );
    expect(socketUrl(http, '/ws/users/alice', { after: null, token: null })).toBe('ws://localhost:8080/ws/users/alice');
  });
});
