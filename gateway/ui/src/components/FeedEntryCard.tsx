import { entryTimeMs, relativeTime, safeLink, snippet } from '../lib/format';
import type { Entry } from '../lib/types';

export function FeedEntryCard({ entry, now }: { entry: Entry; now: number }) {
  const article = entry.article;
  const link = safeLink(article?.url ?? article?.link);
  const title = article ? article.title?.trim() || snippet(article.text ?? '', 80) || entry.doc : 'Article expired';
  const text = article ? snippet(article.text ?? '') : 'Its stored document expired; the feed keeps only the reference.';
  const timeMs = entryTimeMs(entry);

  return (
    <article
      className={`entry${article ? '' : ' entry-expired'}`}
      data-testid="feed-entry"
      data-entry-id={entry.id}
      data-topic={entry.topic}
      data-doc={entry.doc}
    >
      <div className="entry-meta">
        <span className="chip chip-static">{entry.topic}</span>
        {timeMs !== null && (
          <time dateTime={new Date(timeMs).toISOString()} title={new Date(timeMs).toLocaleString()}>
            {relativeTime(timeMs, now)}
          </time>
        )}
      </div>
      <h3 className="entry-title">
        {link ? (
          <a href={link} target="_blank" rel="noopener noreferrer">
            {title}
          </a>
        ) : (
          title
        )}
      </h3>
      {text && <p className="entry-text">{text}</p>}
    </article>
  );
}
