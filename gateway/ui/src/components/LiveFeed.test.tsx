// @vitest-environment jsdom
import { act, cleanup, fireEvent, render, screen } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { entry, message } from '../test/fixtures';
import { fakeSockets } from '../test/fakeSocket';
import type { Entry } from '../lib/types';
import { LiveFeed } from './LiveFeed';

const shownIds = () => screen.queryAllByTestId('feed-entry').map((el) => el.getAttribute('data-entry-id'));

/** Where the top of the feed is relative to the viewport: negative means scrolled past it. */
function feedTopAt(top: number) {
  vi.spyOn(Element.prototype, 'getBoundingClientRect').mockReturnValue({
    top,
    bottom: top,
    left: 0,
    right: 0,
    width: 0,
    height: 0,
    x: 0,
    y: top,
    toJSON: () => ({}),
  });
}

function renderFeed(fetchOlder: (before: string, count: number) => Promise<Entry[]> = async () => []) {
  const sockets = fakeSockets();
  render(
    <LiveFeed
      socketPath="/ws/users/alice"
      token={null}
      backlogSize={2}
      fetchOlder={fetchOlder}
      filterTopics={['finance', 'sports']}
      emptyText="nothing yet"
      createSocket={sockets.factory}
    />,
  );
  return sockets;
}

beforeEach(() => {
  window.scrollTo = vi.fn() as unknown as typeof window.scrollTo;
});

afterEach(() => {
  cleanup();
  vi.restoreAllMocks();
  vi.useRealTimers();
});

describe('LiveFeed', () => {
  it('shows the backlog newest first and says when it is live', () => {
    const { connections } = renderFeed();
    expect(connections[0]!.url).toBe('ws://localhost:3000/ws/users/alice');
    expect(screen.getByTestId('connection-status').dataset.state).toBe('connecting');
    connections[0]!.open();
    connections[0]!.send(message([entry('999-0'), entry('1000-0')], 'backlog'));
    expect(screen.getByTestId('connection-status').dataset.state).toBe('live');
    expect(shownIds()).toEqual(['1000-0', '999-0']);
  });

  it('says so when the feed is empty', () => {
    const { connections } = renderFeed();
    connections[0]!.send(message([], 'backlog'));
    expect(screen.getByTestId('feed-empty').textContent).toBe('nothing yet');
  });

  it('shows live entries at once while the reader is at the top', () => {
    feedTopAt(120);
    const { connections } = renderFeed();
    connections[0]!.send(message([entry('1-0')], 'backlog'));
    connections[0]!.send(message([entry('2-0')]));
    expect(shownIds()).toEqual(['2-0', '1-0']);
    expect(screen.queryByTestId('new-banner')).toBeNull();
  });

  it('holds live entries behind an "N new" banner while the reader is scrolled down', () => {
    const { connections } = renderFeed();
    connections[0]!.send(message([entry('1-0')], 'backlog'));
    feedTopAt(-600);
    connections[0]!.send(message([entry('2-0'), entry('3-0')]));
    expect(shownIds()).toEqual(['1-0']);
    expect(screen.getByTestId('new-banner').textContent).toContain('2 new');

    connections[0]!.send(message([entry('4-0')]));
    expect(screen.getByTestId('new-banner').textContent).toContain('3 new');

    fireEvent.click(screen.getByTestId('new-banner'));
    expect(shownIds()).toEqual(['4-0', '3-0', '2-0', '1-0']);
    expect(screen.queryByTestId('new-banner')).toBeNull();
    expect(window.scrollTo).toHaveBeenCalled();
  });

  it('shows held entries when the reader scrolls back to the top', () => {
    const { connections } = renderFeed();
    connections[0]!.send(message([entry('1-0')], 'backlog'));
    feedTopAt(-600);
    connections[0]!.send(message([entry('2-0')]));
    expect(screen.getByTestId('new-banner')).toBeTruthy();
    feedTopAt(50);
    act(() => {
      window.dispatchEvent(new Event('scroll'));
    });
    expect(shownIds()).toEqual(['2-0', '1-0']);
    expect(screen.queryByTestId('new-banner')).toBeNull();
  });

  it('filters by topic chips, several at once, and "all" resets', () => {
    const { connections } = renderFeed();
    connections[0]!.send(message([entry('1-0', 'sports'), entry('2-0', 'finance'), entry('3-0', 'health')], 'backlog'));
    const chip = (topic: string) => screen.getAllByTestId('topic-chip').find((el) => el.dataset.topic === topic)!;
    // Topics present in the feed get a chip even when the catalog list lacks them.
    expect(screen.getAllByTestId('topic-chip').map((el) => el.dataset.topic)).toEqual(['', 'finance', 'health', 'sports']);

    fireEvent.click(chip('sports'));
    expect(shownIds()).toEqual(['1-0']);
    fireEvent.click(chip('health'));
    expect(shownIds()).toEqual(['3-0', '1-0']);
    fireEvent.click(chip(''));
    expect(shownIds()).toEqual(['3-0', '2-0', '1-0']);
  });

  it('reconnects with backoff, resuming after the newest id, without duplicates', () => {
    vi.useFakeTimers();
    const { connections } = renderFeed();
    connections[0]!.send(message([entry('999-0'), entry('1000-0')], 'backlog'));
    connections[0]!.drop();
    expect(screen.getByTestId('connection-status').dataset.state).toBe('reconnecting');

    act(() => vi.advanceTimersByTime(499));
    expect(connections).toHaveLength(1);
    act(() => vi.advanceTimersByTime(1));
    expect(connections).toHaveLength(2);
    expect(connections[1]!.url).toBe('ws://localhost:3000/ws/users/alice?after=1000-0');

    // A failed attempt waits twice as long.
    connections[1]!.drop();
    act(() => vi.advanceTimersByTime(999));
    expect(connections).toHaveLength(2);
    act(() => vi.advanceTimersByTime(1));
    expect(connections).toHaveLength(3);

    connections[2]!.open();
    connections[2]!.send(message([entry('1000-0'), entry('1001-0')], 'resume'));
    expect(shownIds()).toEqual(['1001-0', '1000-0', '999-0']);
    expect(screen.getByTestId('connection-status').dataset.state).toBe('live');
  });

  it('marks a hole when a resumed feed was truncated', () => {
    const { connections } = renderFeed();
    connections[0]!.send(message([entry('1-0')], 'backlog'));
    connections[0]!.send(message([entry('50-0')], 'resume', true));
    expect(shownIds()).toEqual(['50-0', '1-0']);
    expect(screen.getByTestId('feed-gap')).toBeTruthy();
  });

  it('shows an error frame from the gateway', () => {
    const { connections } = renderFeed();
    connections[0]!.send({ type: 'error', message: 'invalid token' });
    expect(screen.getByTestId('feed-error').textContent).toBe('invalid token');
  });

  it('loads older entries before the oldest shown one', async () => {
    const fetchOlder = vi.fn(async () => [entry('8-0'), entry('7-0')]);
    const { connections } = renderFeed(fetchOlder);
    connections[0]!.send(message([entry('9-0'), entry('10-0')], 'backlog'));
    await act(async () => {
      fireEvent.click(screen.getByTestId('load-older'));
    });
    expect(fetchOlder).toHaveBeenCalledWith('9-0', 20);
    expect(shownIds()).toEqual(['10-0', '9-0', '8-0', '7-0']);
    // Fewer than a page: there is nothing older.
    expect(screen.queryByTestId('load-older')).toBeNull();
  });

  it('offers no "load older" when the backlog was shorter than a full one', () => {
    const { connections } = renderFeed();
    connections[0]!.send(message([entry('1-0')], 'backlog'));
    expect(screen.queryByTestId('load-older')).toBeNull();
    expect(screen.getByTestId('feed-start')).toBeTruthy();
  });

  it('closes its socket when it goes away', () => {
    const { connections } = renderFeed();
    cleanup();
    expect(connections[0]!.closed).toBe(true);
  });
});
