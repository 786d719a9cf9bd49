import { describe, expect, it } from 'vitest';
import { isValidTopicSlug, isValidUserId } from './validate';

describe('names', () => {
  it('accepts user ids of 1-64 characters of A-Z a-z 0-9 _ - .', () => {
    expect(isValidUserId('alice')).toBe(true);
    expect(isValidUserId('User_42.b-c')).toBe(true);
    expect(isValidUserId('x'.repeat(64))).toBe(true);
    expect(isValidUserId('x'.repeat(65))).toBe(false);
    expect(isValidUserId('')).toBe(false);
    expect(isValidUserId('a b')).toBe(false);
    expect(isValidUserId('a{b}')).toBe(false);
  });

  it('accepts topic slugs starting with a letter or digit', () => {
    expect(isValidTopicSlug('sports')).toBe(true);
    expect(isValidTopicSlug('ai-safety_2')).toBe(true);
    expect(isValidTopicSlug('-x')).toBe(false);
    expect(isValidTopicSlug('Sports')).toBe(false);
    expect(isValidTopicSlug('')).toBe(false);
  });
});
