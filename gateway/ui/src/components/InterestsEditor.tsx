import { useEffect, useState } from 'react';
import { api, errorMessage } from '../lib/api';
import type { Topic } from '../lib/types';

interface Props {
  user: string;
  token: string | null;
  /** Every topic of the catalog; null while loading. */
  topics: Topic[] | null;
}

type Status = { kind: 'loading' } | { kind: 'idle' } | { kind: 'saving' } | { kind: 'saved' } | { kind: 'error'; message: string };

/** Checkboxes of every topic; saving replaces the user's interests with the checked ones. */
export function InterestsEditor({ user, token, topics }: Props) {
  const [saved, setSaved] = useState<string[]>([]);
  const [checked, setChecked] = useState<ReadonlySet<string>>(new Set());
  const [status, setStatus] = useState<Status>({ kind: 'loading' });

  useEffect(() => {
    let current = true;
    setStatus({ kind: 'loading' });
    api.interests(user, token).then(
      (interests) => {
        if (!current) return;
        setSaved(interests);
        setChecked(new Set(interests));
        setStatus({ kind: 'idle' });
      },
      (error: unknown) => current && setStatus({ kind: 'error', message: `Could not load interests: ${errorMessage(error)}` }),
    );
    return () => {
      current = false;
    };
  }, [user, token]);

  const toggle = (slug: string) => {
    const next = new Set(checked);
    if (next.has(slug)) next.delete(slug);
    else next.add(slug);
    setChecked(next);
    if (status.kind === 'saved') setStatus({ kind: 'idle' });
  };

  const save = async () => {
    setStatus({ kind: 'saving' });
    try {
      const interests = await api.setInterests(user, [...checked].sort(), token);
      setSaved(interests);
      setChecked(new Set(interests));
      setStatus({ kind: 'saved' });
    } catch (error) {
      setStatus({ kind: 'error', message: `Could not save: ${errorMessage(error)}` });
    }
  };

  const dirty = saved.length !== checked.size || saved.some((slug) => !checked.has(slug));
  // Interests the catalog no longer has stay visible so they can be removed.
  const slugs = [...new Set([...(topics ?? []).map((t) => t.slug), ...saved])].sort();
  const descriptions = new Map((topics ?? []).map((t) => [t.slug, t.description]));

  return (
    <form
      className="panel interests"
      data-testid="interests-editor"
      onSubmit={(event) => {
        event.preventDefault();
        void save();
      }}
    >
      <h2>Interests</h2>
      <p className="muted">New articles of these topics are delivered to this feed.</p>
      {topics === null || status.kind === 'loading' ? (
        <p className="muted">Loading…</p>
      ) : (
        <ul className="interest-list">
          {slugs.map((slug) => (
            <li key={slug}>
              <label title={descriptions.get(slug)}>
                <input type="checkbox" checked={checked.has(slug)} onChange={() => toggle(slug)} data-testid={`interest-${slug}`} />
                {slug}
              </label>
            </li>
          ))}
        </ul>
      )}
      <div className="interests-actions">
        <button type="submit" disabled={!dirty || status.kind === 'saving' || status.kind === 'loading'} data-testid="interests-save">
          {status.kind === 'saving' ? 'Saving…' : 'Save'}
        </button>
        {status.kind === 'saved' && (
          <span className="ok" data-testid="interests-saved">
            Saved
          </span>
        )}
      </div>
      {status.kind === 'error' && (
        <p className="error" role="alert" data-testid="interests-error">
          {status.message}
        </p>
      )}
    </form>
  );
}
