import { Fragment, useCallback, useMemo, useRef, useState } from 'react';
import { useLiveFeed } from '../hooks/useLiveFeed';
import { useNow } from '../hooks/useNow';
import { filterByTopics, newCount } from '../lib/feed';
import type { SocketFactory } from '../lib/socket';
import type { Entry } from '../lib/types';
import { ConnectionStatus } from './ConnectionStatus';
import { FeedEntryCard } from './FeedEntryCard';
import { NewEntriesBanner } from './NewEntriesBanner';
import { TopicFilter } from './TopicFilter';

interface Props {
  socketPath: string;
  token: string | null;
  /** The gateway's `backlog` (/api/config). */
  backlogSize: number;
  fetchOlder: (before: string, count: number) => Promise<Entry[]>;
  /** Topics offered as filter chips (with any other topic that appears in the feed); omitted: no filter. */
  filterTopics?: string[];
  /** What an empty feed says. */
  emptyText: string;
  createSocket?: SocketFactory;
}

/** How far above the viewport the feed's top may be and still count as "at the top", in pixels. */
const TOP_SLACK_PX = 8;

export function LiveFeed({ socketPath, token, backlogSize, fetchOlder, filterTopics, emptyText, createSocket }: Props) {
  const feedTop = useRef<HTMLDivElement>(null);
  const readerAtTop = useCallback(() => (feedTop.current ? feedTop.current.getBoundingClientRect().top >= -TOP_SLACK_PX : true), []);
  const { feed, connection, socketError, showHeld, loadOlder, older } = useLiveFeed({
    socketPath,
    token,
    backlogSize,
    fetchOlder,
    readerAtTop,
    createSocket,
  });
  const [selected, setSelected] = useState<ReadonlySet<string>>(new Set());
  const now = useNow();

  const counts = useMemo(() => {
    const byTopic = new Map<string, number>();
    for (const entry of feed.shown) byTopic.set(entry.topic, (byTopic.get(entry.topic) ?? 0) + 1);
    return byTopic;
  }, [feed.shown]);
  const chipTopics = useMemo(() => (filterTopics ? [...new Set([...filterTopics, ...counts.keys()])].sort() : []), [filterTopics, counts]);
  const visible = filterByTopics(feed.shown, selected);
  const gaps = new Set(feed.gapsBelow);

  const showNew = () => {
    showHeld();
    window.scrollTo({ top: 0, behavior: 'smooth' });
  };

  return (
    <section className="feed" aria-label="Feed">
      <div className="feed-toolbar">
        <ConnectionStatus state={connection} />
        {filterTopics && <TopicFilter topics={chipTopics} counts={counts} selected={selected} onChange={setSelected} />}
      </div>
      {socketError && (
        <p className="error" role="alert" data-testid="feed-error">
          {socketError}
        </p>
      )}
      <NewEntriesBanner count={newCount(feed, selected)} onShow={showNew} />
      <div ref={feedTop} />
      {!feed.loaded && <p className="muted">Loading…</p>}
      {feed.loaded && visible.length === 0 && (
        <p className="muted" data-testid="feed-empty">
          {feed.shown.length === 0 ? emptyText : 'No entries of the selected topics.'}
        </p>
      )}
      <div className="entries" data-testid="feed-entries">
        {visible.map((entry) => (
          <Fragment key={entry.id}>
            <FeedEntryCard entry={entry} now={now} />
            {gaps.has(entry.id) && (
              <p className="gap" data-testid="feed-gap">
                Older entries were trimmed from the feed while this page was disconnected.
              </p>
            )}
          </Fragment>
        ))}
      </div>
      {feed.shown.length > 0 && (
        <div className="older">
          {older.error && (
            <p className="error" role="alert">
              Could not load older entries: {older.error}
            </p>
          )}
          {older.exhausted ? (
            <p className="muted" data-testid="feed-start">
              Start of the feed.
            </p>
          ) : (
            <button type="button" onClick={loadOlder} disabled={older.loading} data-testid="load-older">
              {older.loading ? 'Loading…' : 'Load older'}
            </button>
          )}
        </div>
      )}
    </section>
  );
}
