import { useCallback } from 'react';
import { useParams } from 'react-router-dom';
import { InterestsEditor } from '../components/InterestsEditor';
import { LiveFeed } from '../components/LiveFeed';
import { useGateway } from '../GatewayContext';
import { useTopics } from '../hooks/useTopics';
import { api } from '../lib/api';
import { isValidUserId } from '../lib/validate';

export function UserPage() {
  const user = useParams().id ?? '';
  const { config, token } = useGateway();
  const { topics, error } = useTopics();
  const fetchOlder = useCallback((before: string, count: number) => api.userFeed(user, before, count, token), [user, token]);

  if (!isValidUserId(user)) {
    return (
      <main className="page">
        <p className="error">Not a valid user id: user ids are 1-64 characters of A-Z a-z 0-9 _ - .</p>
      </main>
    );
  }
  return (
    <main className="page">
      <h1>
        Feed of <span className="name">{user}</span>
      </h1>
      {config.auth && !token && (
        <p className="error" role="alert">
          This gateway requires a token: open this page with <code>?token=…</code> (minted by <code>agentic-gateway token</code>).
        </p>
      )}
      {error && <p className="error">Could not load topics: {error}</p>}
      <div className="feed-layout">
        <LiveFeed
          key={user}
          socketPath={`/ws/users/${encodeURIComponent(user)}`}
          token={token}
          backlogSize={config.backlog}
          fetchOlder={fetchOlder}
          filterTopics={topics?.map((t) => t.slug) ?? []}
          emptyText="No entries yet: choose interests, then articles of those topics arrive here."
        />
        <aside>
          <InterestsEditor key={user} user={user} token={token} topics={topics} />
        </aside>
      </div>
    </main>
  );
}
