import { useCallback } from 'react';
import { useParams } from 'react-router-dom';
import { LiveFeed } from '../components/LiveFeed';
import { useGateway } from '../GatewayContext';
import { useTopics } from '../hooks/useTopics';
import { api } from '../lib/api';
import { isValidTopicSlug } from '../lib/validate';

export function TopicPage() {
  const slug = useParams().slug ?? '';
  const { config } = useGateway();
  const { topics } = useTopics();
  const fetchOlder = useCallback((before: string, count: number) => api.topicFeed(slug, before, count), [slug]);
  const topic = topics?.find((t) => t.slug === slug);

  if (!isValidTopicSlug(slug)) {
    return (
      <main className="page">
        <p className="error">Not a valid topic slug: 1-64 characters of a-z 0-9 - _, starting with a letter or digit.</p>
      </main>
    );
  }
  return (
    <main className="page">
      <h1>
        Topic <span className="name">{slug}</span>
      </h1>
      {topic && <p className="muted topic-description">{topic.description}</p>}
      {topics && !topic && <p className="muted">This topic is not in the catalog; its stream is shown if it exists.</p>}
      <LiveFeed
        key={slug}
        socketPath={`/ws/topics/${encodeURIComponent(slug)}`}
        token={null}
        backlogSize={config.backlog}
        fetchOlder={fetchOlder}
        emptyText="No articles of this topic yet."
      />
    </main>
  );
}
