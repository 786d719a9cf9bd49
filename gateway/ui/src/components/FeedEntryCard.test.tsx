// @vitest-environment jsdom
import { cleanup, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import type { Entry } from '../lib/types';
import { FeedEntryCard } from './FeedEntryCard';

afterEach(cleanup);

const NOW = 1_764_172_800_000;

function card(article: Entry['article']) {
  render(<FeedEntryCard entry={{ id: `${NOW - 120_000}-0`, topic: 'sports', doc: 'doc:{a1}', article }} now={NOW} />);
  return screen.getByTestId('feed-entry');
}

describe('FeedEntryCard', () => {
  it('shows title, topic, snippet and relative time, with the ids for tests', () => {
    const el = card({ title: 'Cup final', text: 'Home side wins.', ingest_ms: NOW - 5 * 60_000 });
    expect(el.dataset.entryId).toBe(`${NOW - 120_000}-0`);
    expect(el.dataset.doc).toBe('doc:{a1}');
    expect(el.textContent).toContain('sports');
    expect(el.textContent).toContain('Cup final');
    expect(el.textContent).toContain('Home side wins.');
    expect(el.textContent).toContain('5 min ago');
    expect(el.querySelector('a')).toBeNull();
  });

  it("links the title to url, or to the fetcher's link field", () => {
    expect(card({ title: 'A', url: 'https://a.example/1' }).querySelector('a')!.getAttribute('href')).toBe('https://a.example/1');
    cleanup();
    expect(card({ title: 'B', link: 'https://b.example/2' }).querySelector('a')!.getAttribute('href')).toBe('https://b.example/2');
  });

  it('never links a javascript: URL', () => {
    expect(card({ title: 'C', url: 'javascript:alert(1)' }).querySelector('a')).toBeNull();
  });

  it('says when the article expired, timed by its entry id', () => {
    const el = card(null);
    expect(el.textContent).toContain('Article expired');
    expect(el.textContent).toContain('2 min ago');
  });

  it('uses the start of the text when there is no title', () => {
    expect(card({ text: 'Only a body text here.' }).querySelector('h3')!.textContent).toBe('Only a body text here.');
  });
});
