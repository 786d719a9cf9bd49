// Builders shared by the tests.
import type { EntriesMessage, Entry, Stats } from '../lib/types';

export function entry(id: string, topic = 'sports', title = `article ${id}`): Entry {
  return { id, topic, doc: `doc:{${id}}`, article: { id, title, text: `text of ${id}`, topic } };
}

export function message(entries: Entry[], mode: EntriesMessage['mode'] = 'live', truncated = false): EntriesMessage {
  return { type: 'entries', mode, entries, truncated };
}

export function ids(entries: Entry[]): string[] {
  return entries.map((e) => e.id);
}

export function stats(
  tsMs: number,
  module: Record<string, number> = {},
  gateway: Partial<Stats['gateway']> = {},
  server: Partial<Stats['server']> = {},
): Stats {
  return {
    ts_ms: tsMs,
    module,
    server: {
      used_memory: 1000,
      maxmemory: 0,
      model_status: 'ready',
      backend: 'tract-onnx-cpu',
      sidecars_live: 0,
      sidecar_devices: '',
      ...server,
    },
    gateway: { sockets: 1, entries_sent: 0, resyncs: 0, dropped: 0, latency_ms_p50: 0, latency_ms_p99: 0, ...gateway },
  };
}
