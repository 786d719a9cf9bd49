import { describe, expect, it } from 'vitest';
import { entry } from '../test/fixtures';
import { bytes, compactNumber, entryTimeMs, relativeTime, safeLink, snippet } from './format';

describe('relativeTime', () => {
  const now = 1_000_000_000;
  it('says how long ago, in the largest fitting unit', () => {
    expect(relativeTime(now - 3_000, now)).toBe('just now');
    expect(relativeTime(now - 42_000, now)).toBe('42 s ago');
    expect(relativeTime(now - 5 * 60_000, now)).toBe('5 min ago');
    expect(relativeTime(now - 3 * 3_600_000, now)).toBe('3 h ago');
    expect(relativeTime(now - 50 * 3_600_000, now)).toBe('2 d ago');
  });

  it('treats a time in the future (clock skew) as now', () => {
    expect(relativeTime(now + 5_000, now)).toBe('just now');
  });
});

describe('entryTimeMs', () => {
  it('prefers the ingest time and falls back to the id', () => {
    const withIngest = { ...entry('2000-0'), article: { title: 't', ingest_ms: 1500 } };
    expect(entryTimeMs(withIngest)).toBe(1500);
    expect(entryTimeMs({ ...entry('2000-0'), article: null })).toBe(2000);
  });
});

describe('snippet', () => {
  it('keeps short texts, collapsing whitespace', () => {
    expect(snippet('  a\n b   c ')).toBe('a b c');
  });

  it('cuts long texts at a word boundary', () => {
    expect(snippet('alpha beta gamma delta', 12)).toBe('alpha beta…');
  });

  it('cuts inside a word when there is no space late enough', () => {
    expect(snippet('abcdefghijklmnop', 10)).toBe('abcdefghij…');
  });
});

describe('safeLink', () => {
  it('links http and https only', () => {
    expect(safeLink('https://example.com/a?b=1')).toBe('https://example.com/a?b=1');
    expect(safeLink('http://example.com')).toBe('http://example.com/');
    expect(safeLink('javascript:alert(1)')).toBeNull();
    expect(safeLink('not a url')).toBeNull();
    expect(safeLink(undefined)).toBeNull();
  });
});

describe('numbers', () => {
  it('writes compact numbers', () => {
    expect(compactNumber(0)).toBe('0');
    expect(compactNumber(0.125)).toBe('0.13');
    expect(compactNumber(950)).toBe('950');
    expect(compactNumber(1234)).toBe('1.23k');
    expect(compactNumber(5_600_000)).toBe('5.6M');
    expect(compactNumber(2_000_000_000)).toBe('2G');
  });

  it('writes bytes in binary units', () => {
    expect(bytes(512)).toBe('512 B');
    expect(bytes(1536)).toBe('1.5 KiB');
    expect(bytes(200 * 1024 * 1024)).toBe('200 MiB');
    expect(bytes(3 * 1024 ** 3)).toBe('3 GiB');
  });
});
