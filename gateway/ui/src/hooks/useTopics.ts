import { useEffect, useState } from 'react';
import { api, errorMessage } from '../lib/api';
import type { Topic } from '../lib/types';

/** The topic catalog (GET /api/topics): null while loading. */
export function useTopics(): { topics: Topic[] | null; error: string | null } {
  const [topics, setTopics] = useState<Topic[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let current = true;
    api.topics().then(
      (list) => current && setTopics(list),
      (e: unknown) => current && setError(errorMessage(e)),
    );
    return () => {
      current = false;
    };
  }, []);
  return { topics, error };
}
