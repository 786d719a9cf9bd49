import { describe, expect, it } from 'vitest';
import { compareEntryIds, entryIdMs, newerId, parseEntryId } from './ids';

describe('entry ids', () => {
  it('parses <ms>-<seq>', () => {
    expect(parseEntryId('1764172800123-7')).toEqual([1764172800123, 7]);
    expect(parseEntryId('abc')).toBeNull();
    expect(parseEntryId('12-')).toBeNull();
  });

  it('compares as numbers, not strings', () => {
    expect(compareEntryIds('999-0', '1000-0')).toBeLessThan(0);
    expect('999-0' > '1000-0').toBe(true); // what string order would get wrong
    expect(compareEntryIds('1000-10', '1000-9')).toBeGreaterThan(0);
    expect(compareEntryIds('1000-2', '1000-2')).toBe(0);
    expect(compareEntryIds('1764172800123-0', '1764172800122-99')).toBeGreaterThan(0);
  });

  it('sorts a list by (ms, seq)', () => {
    const sorted = ['1000-0', '999-5', '1000-10', '999-10', '1000-9'].sort(compareEntryIds);
    expect(sorted).toEqual(['999-5', '999-10', '1000-0', '1000-9', '1000-10']);
  });

  it('picks the newer id, null being the oldest', () => {
    expect(newerId(null, '5-0')).toBe('5-0');
    expect(newerId('5-0', null)).toBe('5-0');
    expect(newerId('999-0', '1000-0')).toBe('1000-0');
    expect(newerId(null, null)).toBeNull();
  });

  it('reads the time of an id', () => {
    expect(entryIdMs('1764172800123-0')).toBe(1764172800123);
    expect(entryIdMs('x')).toBeNull();
  });
});
