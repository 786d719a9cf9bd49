import { describe, expect, it } from 'vitest';
import { entry, ids, message } from '../test/fixtures';
import {
  emptyFeed,
  feedReducer,
  filterByTopics,
  MAX_SHOWN,
  mergeNewestFirst,
  newCount,
  oldestShownId,
  toggleTopic,
  type FeedState,
} from './feed';

const receive = (
  state: FeedState,
  entries: ReturnType<typeof entry>[],
  readerAtTop = true,
  mode: 'backlog' | 'live' | 'resume' | 'resync' = 'live',
  truncated = false,
) => feedReducer(state, { type: 'received', message: message(entries, mode, truncated), readerAtTop });

describe('mergeNewestFirst', () => {
  it('orders by id as numbers, newest first, and keeps each id once', () => {
    const merged = mergeNewestFirst([entry('999-0'), entry('1000-1')], [entry('1000-0'), entry('999-0', 'other')]);
    expect(ids(merged)).toEqual(['1000-1', '1000-0', '999-0']);
    expect(merged[2]!.topic).toBe('sports'); // the first copy wins
  });
});

describe('feedReducer: received', () => {
  it('shows the backlog newest first, whatever the scroll position', () => {
    const state = receive(emptyFeed, [entry('1-0'), entry('2-0'), entry('3-0')], false, 'backlog');
    expect(ids(state.shown)).toEqual(['3-0', '2-0', '1-0']);
    expect(state.held).toEqual([]);
    expect(state.newestId).toBe('3-0');
    expect(state.loaded).toBe(true);
  });

  it('puts live entries on top when the reader is at the top', () => {
    let state = receive(emptyFeed, [entry('999-0')], true, 'backlog');
    state = receive(state, [entry('1000-0')], true);
    expect(ids(state.shown)).toEqual(['1000-0', '999-0']);
    expect(state.newestId).toBe('1000-0');
  });

  it('holds live entries while the reader is scrolled down, and counts them for the banner', () => {
    let state = receive(emptyFeed, [entry('1-0')], true, 'backlog');
    state = receive(state, [entry('2-0'), entry('3-0')], false);
    state = receive(state, [entry('4-0')], false);
    expect(ids(state.shown)).toEqual(['1-0']);
    expect(ids(state.held)).toEqual(['4-0', '3-0', '2-0']);
    expect(newCount(state, new Set())).toBe(3);
    expect(state.newestId).toBe('4-0');

    state = feedReducer(state, { type: 'showHeld' });
    expect(ids(state.shown)).toEqual(['4-0', '3-0', '2-0', '1-0']);
    expect(newCount(state, new Set())).toBe(0);
  });

  it('shows held entries too when a new one arrives with the reader back at the top', () => {
    let state = receive(emptyFeed, [entry('1-0')], true, 'backlog');
    state = receive(state, [entry('2-0')], false);
    state = receive(state, [entry('3-0')], true);
    expect(ids(state.shown)).toEqual(['3-0', '2-0', '1-0']);
    expect(state.held).toEqual([]);
  });

  it('drops duplicate ids: repeated across messages, within a message, and already held', () => {
    let state = receive(emptyFeed, [entry('1-0'), entry('2-0')], true, 'backlog');
    state = receive(state, [entry('2-0'), entry('3-0'), entry('3-0')], true, 'resume');
    expect(ids(state.shown)).toEqual(['3-0', '2-0', '1-0']);
    state = receive(state, [entry('4-0')], false);
    state = receive(state, [entry('4-0'), entry('3-0')], false, 'resync');
    expect(ids(state.held)).toEqual(['4-0']);
    expect(newCount(state, new Set())).toBe(1);
  });

  it('keeps what it has on a truncated message and marks the hole under the new entries', () => {
    let state = receive(emptyFeed, [entry('1-0'), entry('2-0')], true, 'backlog');
    state = receive(state, [entry('90-0'), entry('91-0')], true, 'resume', true);
    expect(ids(state.shown)).toEqual(['91-0', '90-0', '2-0', '1-0']);
    expect(state.gapsBelow).toEqual(['90-0']);
  });

  it('marks no hole when a truncated message starts an empty feed', () => {
    const state = receive(emptyFeed, [entry('5-0')], true, 'backlog', true);
    expect(state.gapsBelow).toEqual([]);
  });

  it('records the newest id even when every entry was a duplicate', () => {
    let state = receive(emptyFeed, [entry('1-0')], true, 'backlog');
    state = receive(state, [], true, 'resume');
    expect(state.newestId).toBe('1-0');
    expect(state.loaded).toBe(true);
  });

  it(`keeps at most ${MAX_SHOWN} shown entries, dropping the oldest`, () => {
    const many = Array.from({ length: MAX_SHOWN + 5 }, (_, i) => entry(`${i + 1}-0`));
    const state = receive(emptyFeed, many, true, 'backlog');
    expect(state.shown).toHaveLength(MAX_SHOWN);
    expect(state.shown[0]!.id).toBe(`${MAX_SHOWN + 5}-0`);
    expect(oldestShownId(state)).toBe('6-0');
  });
});

describe('feedReducer: older', () => {
  it('appends older entries below, without duplicates', () => {
    let state = receive(emptyFeed, [entry('10-0'), entry('11-0')], true, 'backlog');
    expect(oldestShownId(state)).toBe('10-0');
    state = feedReducer(state, { type: 'older', entries: [entry('10-0'), entry('9-0'), entry('8-0')] });
    expect(ids(state.shown)).toEqual(['11-0', '10-0', '9-0', '8-0']);
    expect(oldestShownId(state)).toBe('8-0');
  });

  it('returns the same state when nothing is new', () => {
    const state = receive(emptyFeed, [entry('10-0')], true, 'backlog');
    expect(feedReducer(state, { type: 'older', entries: [entry('10-0')] })).toBe(state);
    expect(feedReducer(state, { type: 'showHeld' })).toBe(state);
  });
});

describe('topic filter', () => {
  const entries = [entry('3-0', 'sports'), entry('2-0', 'finance'), entry('1-0', 'health')];

  it('shows everything with no selection', () => {
    expect(ids(filterByTopics(entries, new Set()))).toEqual(['3-0', '2-0', '1-0']);
  });

  it('shows the entries of any selected topic', () => {
    expect(ids(filterByTopics(entries, new Set(['sports', 'health'])))).toEqual(['3-0', '1-0']);
  });

  it('toggles topics on and off; "all" clears the selection', () => {
    let selected = toggleTopic(new Set(), 'sports');
    selected = toggleTopic(selected, 'health');
    expect([...selected].sort()).toEqual(['health', 'sports']);
    selected = toggleTopic(selected, 'sports');
    expect([...selected]).toEqual(['health']);
    expect(toggleTopic(selected, null).size).toBe(0);
  });

  it('counts only held entries the filter would show in the banner', () => {
    let state = receive(emptyFeed, [entry('1-0')], true, 'backlog');
    state = receive(state, [entry('2-0', 'sports'), entry('3-0', 'finance'), entry('4-0', 'finance')], false);
    expect(newCount(state, new Set())).toBe(3);
    expect(newCount(state, new Set(['finance']))).toBe(2);
    expect(newCount(state, new Set(['health']))).toBe(0);
  });
});
