import { toggleTopic } from '../lib/feed';

interface Props {
  /** Chips to offer, in order. */
  topics: string[];
  /** Shown entries per topic. */
  counts: Map<string, number>;
  selected: ReadonlySet<string>;
  onChange: (selected: Set<string>) => void;
}

/** Chips that filter the shown entries by topic; several can be on, "all" clears them. */
export function TopicFilter({ topics, counts, selected, onChange }: Props) {
  return (
    <div className="topic-filter" role="group" aria-label="Filter by topic">
      <button
        type="button"
        className="chip"
        aria-pressed={selected.size === 0}
        data-testid="topic-chip"
        data-topic=""
        onClick={() => onChange(toggleTopic(selected, null))}
      >
        all
      </button>
      {topics.map((topic) => (
        <button
          key={topic}
          type="button"
          className="chip"
          aria-pressed={selected.has(topic)}
          data-testid="topic-chip"
          data-topic={topic}
          onClick={() => onChange(toggleTopic(selected, topic))}
        >
          {topic}
          <span className="chip-count">{counts.get(topic) ?? 0}</span>
        </button>
      ))}
    </div>
  );
}
