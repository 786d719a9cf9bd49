// What the operations page plots: each chart's series and how they are read from /api/stats.
import { bytes, compactNumber } from './format';
import { counterRate, gaugeSeries, moduleStat, type Point, type Read } from './rates';
import type { Stats } from './types';

interface SeriesSpec {
  name: string;
  color: string;
  /** Counters are plotted as per-second rates, gauges as they are. */
  kind: 'counter' | 'gauge';
  read: Read;
  /** Left out of the chart while it has no value (maxmemory 0 = no limit). */
  optional?: boolean;
}

export interface ChartSpec {
  id: string;
  title: string;
  format: (value: number) => string;
  /** 1024 when the values are bytes. */
  tickBase?: 10 | 1024;
  series: SeriesSpec[];
}

const COLORS = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#dc2626'];

const ms = (value: number) => `${compactNumber(value)} ms`;

export const OPS_CHARTS: ChartSpec[] = [
  {
    id: 'throughput',
    title: 'Throughput (per second)',
    format: compactNumber,
    series: [
      { name: 'classified', color: COLORS[0]!, kind: 'counter', read: moduleStat('pipeline_classified') },
      { name: 'articles delivered', color: COLORS[1]!, kind: 'counter', read: moduleStat('pipeline_delivered') },
      { name: 'feed deliveries', color: COLORS[2]!, kind: 'counter', read: moduleStat('fanout_deliveries') },
      { name: 'sent to browsers', color: COLORS[3]!, kind: 'counter', read: (s) => s.gateway.entries_sent },
    ],
  },
  {
    id: 'latency',
    title: 'Latency',
    format: ms,
    series: [
      { name: 'ingest → browser p50', color: COLORS[0]!, kind: 'gauge', read: (s) => s.gateway.latency_ms_p50 },
      { name: 'ingest → browser p99', color: COLORS[4]!, kind: 'gauge', read: (s) => s.gateway.latency_ms_p99 },
      { name: 'pipeline lag p99', color: COLORS[2]!, kind: 'gauge', read: moduleStat('pipeline_lag_ms_p99') },
      // AGENT.STATS reports classify latency in microseconds.
      { name: 'classify p99', color: COLORS[3]!, kind: 'gauge', read: moduleStat('classify_latency_us_p99', 1 / 1000) },
    ],
  },
  {
    id: 'backlog',
    title: 'Backlog',
    format: compactNumber,
    series: [
      { name: 'pipeline backlog', color: COLORS[0]!, kind: 'gauge', read: moduleStat('pipeline_backlog') },
      { name: 'in flight', color: COLORS[1]!, kind: 'gauge', read: moduleStat('pipeline_inflight') },
      { name: 'classify queue', color: COLORS[2]!, kind: 'gauge', read: moduleStat('classify_queue_depth') },
    ],
  },
  {
    id: 'memory',
    title: 'Memory',
    format: bytes,
    tickBase: 1024,
    series: [
      { name: 'used_memory', color: COLORS[0]!, kind: 'gauge', read: (s) => s.server.used_memory },
      {
        name: 'maxmemory',
        color: COLORS[4]!,
        kind: 'gauge',
        read: (s) => (s.server.maxmemory > 0 ? s.server.maxmemory : undefined),
        optional: true,
      },
    ],
  },
  {
    id: 'sidecars',
    title: 'GPU sidecars',
    format: compactNumber,
    series: [{ name: 'sidecars live', color: COLORS[1]!, kind: 'gauge', read: (s) => s.server.sidecars_live }],
  },
];

export interface PlottedSeries {
  name: string;
  color: string;
  points: Point[];
}

/** The chart's series computed from the samples, without optional ones that have no value. */
export function plotChart(spec: ChartSpec, samples: Stats[]): PlottedSeries[] {
  return spec.series
    .map((s) => ({
      name: s.name,
      color: s.color,
      points: s.kind === 'counter' ? counterRate(samples, s.read) : gaugeSeries(samples, s.read),
    }))
    .filter((s, i) => !spec.series[i]!.optional || s.points.some((p) => p.value !== null));
}
