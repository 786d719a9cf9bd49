// One live feed: a WebSocket that reconnects with backoff and resumes after the newest entry seen,
// the feed state (shown, held back, holes) and "load older" over HTTP.
import { useCallback, useEffect, useReducer, useRef, useState } from 'react';
import { errorMessage } from '../lib/api';
import { emptyFeed, feedReducer, oldestShownId, type FeedState } from '../lib/feed';
import { newerId } from '../lib/ids';
import { parseServerMessage } from '../lib/messages';
import { backoffDelay, socketUrl } from '../lib/reconnect';
import { browserSocket, type FeedSocket, type SocketFactory } from '../lib/socket';
import type { Entry } from '../lib/types';

export type ConnectionState = 'connecting' | 'live' | 'reconnecting';

export const OLDER_PAGE = 20;

export interface LiveFeedOptions {
  /** The WebSocket path, e.g. `/ws/users/alice`. */
  socketPath: string;
  token: string | null;
  /** Entries a fresh socket receives first (`backlog` of /api/config): a shorter backlog is the whole feed. */
  backlogSize: number;
  /** Entries older than `before`, newest first (the HTTP feed endpoint). */
  fetchOlder: (before: string, count: number) => Promise<Entry[]>;
  /** Whether the reader sees the top of the feed, so that new entries can appear without moving what they read. */
  readerAtTop: () => boolean;
  createSocket?: SocketFactory;
}

export interface OlderState {
  loading: boolean;
  /** Nothing older exists: the backlog was the whole feed, or the last page came back short. */
  exhausted: boolean;
  error: string | null;
}

export interface LiveFeed {
  feed: FeedState;
  connection: ConnectionState;
  /** The last error the gateway sent on the socket, until entries flow again. */
  socketError: string | null;
  showHeld: () => void;
  loadOlder: () => void;
  older: OlderState;
}

export function useLiveFeed({
  socketPath,
  token,
  backlogSize,
  fetchOlder,
  readerAtTop,
  createSocket = browserSocket,
}: LiveFeedOptions): LiveFeed {
  const [feed, dispatch] = useReducer(feedReducer, emptyFeed);
  const [connection, setConnection] = useState<ConnectionState>('connecting');
  const [socketError, setSocketError] = useState<string | null>(null);
  const [older, setOlder] = useState<OlderState>({ loading: false, exhausted: false, error: null });

  // Read inside socket callbacks, which must not restart the connection when these change.
  const readerAtTopRef = useRef(readerAtTop);
  readerAtTopRef.current = readerAtTop;

  useEffect(() => {
    let stopped = false;
    let attempt = 0;
    let retryTimer: ReturnType<typeof setTimeout> | undefined;
    let socket: FeedSocket | undefined;
    // The resume point is tracked here, not from rendered state, so a reconnect never misses one.
    let newestId: string | null = null;

    const connect = () => {
      const url = socketUrl(window.location, socketPath, { after: newestId, token });
      socket = createSocket(url, {
        onOpen: () => {
          if (!stopped) setConnection('live');
        },
        onMessage: (text) => {
          if (stopped) return;
          const message = parseServerMessage(text);
          if (message?.type === 'error') {
            setSocketError(message.message);
          } else if (message?.type === 'entries') {
            for (const entry of message.entries) newestId = newerId(newestId, entry.id);
            // Entries flowing again: the next drop starts backing off from the shortest wait.
            attempt = 0;
            setSocketError(null);
            if (message.mode === 'backlog' && message.entries.length < backlogSize) {
              setOlder((o) => ({ ...o, exhausted: true }));
            }
            dispatch({ type: 'received', message, readerAtTop: readerAtTopRef.current() });
          }
        },
        onClose: () => {
          if (stopped) return;
          setConnection('reconnecting');
          retryTimer = setTimeout(connect, backoffDelay(attempt));
          attempt++;
        },
      });
    };
    connect();

    return () => {
      stopped = true;
      clearTimeout(retryTimer);
      socket?.close();
    };
  }, [socketPath, token, backlogSize, createSocket]);

  // Held entries appear by themselves once the reader scrolls back up to the top of the feed.
  useEffect(() => {
    const onScroll = () => {
      if (readerAtTopRef.current()) dispatch({ type: 'showHeld' });
    };
    window.addEventListener('scroll', onScroll, { passive: true });
    return () => window.removeEventListener('scroll', onScroll);
  }, []);

  const showHeld = useCallback(() => dispatch({ type: 'showHeld' }), []);

  const oldestId = oldestShownId(feed);
  const fetchOlderRef = useRef(fetchOlder);
  fetchOlderRef.current = fetchOlder;
  const loadOlder = useCallback(() => {
    if (!oldestId) return;
    setOlder((o) => ({ ...o, loading: true, error: null }));
    fetchOlderRef.current(oldestId, OLDER_PAGE).then(
      (entries) => {
        dispatch({ type: 'older', entries });
        setOlder({ loading: false, exhausted: entries.length < OLDER_PAGE, error: null });
      },
      (error: unknown) => setOlder({ loading: false, exhausted: false, error: errorMessage(error) }),
    );
  }, [oldestId]);

  return { feed, connection, socketError, showHeld, loadOlder, older };
}
