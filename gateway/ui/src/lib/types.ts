// The shapes of the gateway's API (gateway/API.md), as the UI reads them.

export interface Article {
  id?: string;
  title?: string;
  text?: string;
  url?: string;
  /** What the fetcher calls the article's URL. */
  link?: string;
  topic?: string;
  score?: number;
  /** When the article entered news_raw, ms since the epoch. */
  ingest_ms?: number;
}

/** One feed item. `article` is null when the stored document expired. */
export interface Entry {
  id: string;
  topic: string;
  doc: string;
  article: Article | null;
}

export type EntriesMode = 'backlog' | 'resume' | 'live' | 'resync';

export interface EntriesMessage {
  type: 'entries';
  mode: EntriesMode;
  /** Oldest first. */
  entries: Entry[];
  truncated: boolean;
}

export interface ErrorMessage {
  type: 'error';
  message: string;
}

export type ServerMessage = EntriesMessage | ErrorMessage;

export interface GatewayConfig {
  auth: boolean;
  backlog: number;
  demo_users: string[];
}

export interface Topic {
  slug: string;
  description: string;
  examples: number;
  default: boolean;
  ready: boolean;
}

export interface Stats {
  ts_ms: number;
  module: Record<string, number>;
  server: {
    used_memory: number;
    maxmemory: number;
    model_status: string;
    backend: string;
    sidecars_live: number;
    sidecar_devices: string;
  };
  gateway: {
    sockets: number;
    entries_sent: number;
    resyncs: number;
    dropped: number;
    /** Over the last 10 seconds; null while nothing was sent in that time. */
    latency_ms_p50: number | null;
    latency_ms_p99: number | null;
  };
}
