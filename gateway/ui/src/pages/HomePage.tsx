import { useState } from 'react';
import { Link, useNavigate } from 'react-router-dom';
import { useGateway } from '../GatewayContext';
import { useTopics } from '../hooks/useTopics';
import { isValidUserId } from '../lib/validate';

export function HomePage() {
  const { config } = useGateway();
  const { topics, error } = useTopics();
  const navigate = useNavigate();
  const [userId, setUserId] = useState('');
  const valid = isValidUserId(userId.trim());

  return (
    <main className="page">
      <section className="intro">
        <h1>Personalised news feeds, served by Valkey</h1>
        <p>
          Articles are classified into topics and delivered to each subscriber's feed inside the Valkey server. Open a user's feed or a
          topic to watch entries arrive live.
        </p>
      </section>

      <div className="home-grid">
        <section className="panel">
          <h2>Users</h2>
          {config.demo_users.length > 0 ? (
            <ul className="link-list" data-testid="demo-users">
              {config.demo_users.map((user) => (
                <li key={user}>
                  <Link to={`/u/${encodeURIComponent(user)}`}>{user}</Link>
                </li>
              ))}
            </ul>
          ) : (
            <p className="muted">No demo users configured.</p>
          )}
          <form
            className="inline-form"
            onSubmit={(event) => {
              event.preventDefault();
              if (valid) navigate(`/u/${encodeURIComponent(userId.trim())}`);
            }}
          >
            <label>
              User id
              <input value={userId} onChange={(e) => setUserId(e.target.value)} placeholder="e.g. 42" data-testid="user-id-input" />
            </label>
            <button type="submit" disabled={!valid}>
              Open feed
            </button>
          </form>
          {userId.trim() !== '' && !valid && <p className="error">1-64 characters of A-Z a-z 0-9 _ - .</p>}
        </section>

        <section className="panel">
          <h2>Topics</h2>
          {error && <p className="error">Could not load topics: {error}</p>}
          {!topics && !error && <p className="muted">Loading…</p>}
          {topics && (
            <ul className="link-list topic-links" data-testid="topic-links">
              {topics.map((topic) => (
                <li key={topic.slug}>
                  <Link to={`/t/${topic.slug}`}>{topic.slug}</Link>
                  {!topic.ready && <span className="muted"> (preparing)</span>}
                  <span className="muted topic-description">{topic.description}</span>
                </li>
              ))}
            </ul>
          )}
        </section>

        <section className="panel">
          <h2>Operations</h2>
          <p>
            Throughput, latency, backlog and memory, live: <Link to="/ops">operations page</Link>.
          </p>
        </section>
      </div>
    </main>
  );
}
