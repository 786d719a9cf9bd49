// The state of one live feed as the reader sees it: what is shown, what is held back while the
// reader is scrolled down, where to resume after a disconnect and where the feed has holes.
// Pure functions; the React side only dispatches actions.
import { compareEntryIds, newerId } from './ids';
import type { EntriesMessage, Entry } from './types';

export interface FeedState {
  /** Entries on the page, newest first, unique ids. */
  shown: Entry[];
  /** Newer entries that arrived while the reader was scrolled down; newest first, not in `shown`. */
  held: Entry[];
  /** The newest id received, shown or held: a reconnect resumes after it. */
  newestId: string | null;
  /** Ids of entries below which the feed lost entries (a `truncated` message started after a hole). */
  gapsBelow: string[];
  /** Whether the first entries message has arrived. */
  loaded: boolean;
}

/** Most entries kept on the page; older ones are dropped as new ones arrive ("load older" brings them back). */
export const MAX_SHOWN = 500;

export type FeedAction =
  { type: 'received'; message: EntriesMessage; readerAtTop: boolean } | { type: 'showHeld' } | { type: 'older'; entries: Entry[] };

export const emptyFeed: FeedState = { shown: [], held: [], newestId: null, gapsBelow: [], loaded: false };

/** `lists` merged into one list, newest first, each id once. */
export function mergeNewestFirst(...lists: Entry[][]): Entry[] {
  const byId = new Map<string, Entry>();
  for (const list of lists) {
    for (const entry of list) {
      if (!byId.has(entry.id)) byId.set(entry.id, entry);
    }
  }
  return [...byId.values()].sort((a, b) => compareEntryIds(b.id, a.id));
}

/** Entries whose topic is selected; an empty selection means every topic. */
export function filterByTopics(entries: Entry[], selected: ReadonlySet<string>): Entry[] {
  return selected.size === 0 ? entries : entries.filter((entry) => selected.has(entry.topic));
}

/** The selection after clicking a topic chip; `null` is the "all" chip, which clears the selection. */
export function toggleTopic(selected: ReadonlySet<string>, topic: string | null): Set<string> {
  if (topic === null) return new Set();
  const next = new Set(selected);
  if (next.has(topic)) next.delete(topic);
  else next.add(topic);
  return next;
}

/** How many held entries the "N new" banner announces: those the current filter would show. */
export function newCount(state: FeedState, selected: ReadonlySet<string>): number {
  return filterByTopics(state.held, selected).length;
}

/** The oldest shown id: where "load older" continues. */
export function oldestShownId(state: FeedState): string | null {
  return state.shown.at(-1)?.id ?? null;
}

export function feedReducer(state: FeedState, action: FeedAction): FeedState {
  switch (action.type) {
    case 'received':
      return receive(state, action.message, action.readerAtTop);
    case 'showHeld':
      return state.held.length === 0 ? state : { ...state, shown: mergeNewestFirst(state.held, state.shown), held: [] };
    case 'older': {
      const known = knownIds(state);
      const older = action.entries.filter((entry) => !known.has(entry.id));
      return older.length === 0 ? state : { ...state, shown: mergeNewestFirst(state.shown, older) };
    }
  }
}

function knownIds(state: FeedState): Set<string> {
  return new Set([...state.shown, ...state.held].map((entry) => entry.id));
}

function receive(state: FeedState, message: EntriesMessage, readerAtTop: boolean): FeedState {
  const known = knownIds(state);
  // A resumed or resynced feed can repeat entries we have: keep the first copy of each id.
  const fresh = mergeNewestFirst(message.entries.filter((entry) => !known.has(entry.id)));
  const newestId = message.entries.reduce<string | null>((newest, entry) => newerId(newest, entry.id), state.newestId);

  let gapsBelow = state.gapsBelow;
  const oldestFresh = fresh.at(-1);
  if (message.truncated && oldestFresh && known.size > 0) {
    // The feed no longer holds everything after what we have: mark the hole under these entries.
    gapsBelow = [...gapsBelow, oldestFresh.id];
  }

  // Nothing on the page yet, or the reader is at the top: nothing to push out of view.
  const showNow = readerAtTop || (state.shown.length === 0 && state.held.length === 0);
  let shown = state.shown;
  let held = state.held;
  if (showNow) {
    shown = mergeNewestFirst(fresh, held, shown);
    held = [];
  } else {
    held = mergeNewestFirst(fresh, held);
  }

  if (shown.length > MAX_SHOWN) {
    shown = shown.slice(0, MAX_SHOWN);
    const kept = new Set(shown.map((entry) => entry.id));
    gapsBelow = gapsBelow.filter((id) => kept.has(id) || held.some((entry) => entry.id === id));
  }
  return { shown, held, newestId, gapsBelow, loaded: true };
}
