// Server-to-client WebSocket frames (gateway/API.md), checked before the feed logic sees them.
import type { EntriesMode, Entry, ServerMessage } from './types';

const MODES: readonly EntriesMode[] = ['backlog', 'resume', 'live', 'resync'];

function isEntry(value: unknown): value is Entry {
  if (typeof value !== 'object' || value === null) return false;
  const entry = value as Record<string, unknown>;
  return (
    typeof entry.id === 'string' && typeof entry.topic === 'string' && (typeof entry.article === 'object' || entry.article === undefined)
  );
}

/** A frame parsed, or null when it is not one this UI understands (it is then ignored). */
export function parseServerMessage(text: string): ServerMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null) return null;
  const frame = value as Record<string, unknown>;
  if (frame.type === 'entries' && Array.isArray(frame.entries)) {
    const mode = MODES.find((m) => m === frame.mode) ?? 'live';
    const entries = frame.entries.filter(isEntry).map((entry) => ({ ...entry, article: entry.article ?? null }));
    return { type: 'entries', mode, entries, truncated: frame.truncated === true };
  }
  if (frame.type === 'error') {
    return { type: 'error', message: typeof frame.message === 'string' ? frame.message : 'unknown error' };
  }
  return null;
}
