// Time series for the operations page from /api/stats samples polled once a second: counters
// become rates from consecutive deltas, gauges are plotted as they are.
import type { Stats } from './types';

/** One point of a series; `value` null breaks the line (no value, or a counter reset). */
export interface Point {
  t: number;
  value: number | null;
}

/** How much history the operations page keeps. */
export const WINDOW_MS = 5 * 60_000;

/** `samples` with `sample` appended, keeping those within `windowMs` of the newest. */
export function appendSample(samples: Stats[], sample: Stats, windowMs = WINDOW_MS): Stats[] {
  const last = samples.at(-1);
  // A repeated or out-of-order timestamp would make a zero or negative interval.
  if (last && sample.ts_ms <= last.ts_ms) return samples;
  const since = sample.ts_ms - windowMs;
  return [...samples.filter((s) => s.ts_ms >= since), sample];
}

/** A value of a sample; null or undefined when the sample has none. */
export type Read = (sample: Stats) => number | null | undefined;

/**
 * Per-second rate of a monotonic counter between consecutive samples. A counter that went down was
 * reset (server or gateway restart): that interval has no rate, so its point is a break.
 */
export function counterRate(samples: Stats[], read: Read): Point[] {
  const points: Point[] = [];
  for (let i = 1; i < samples.length; i++) {
    const before = samples[i - 1]!;
    const after = samples[i]!;
    const a = read(before);
    const b = read(after);
    const seconds = (after.ts_ms - before.ts_ms) / 1000;
    const valid = isNumber(a) && isNumber(b) && b >= a && seconds > 0;
    points.push({ t: after.ts_ms, value: valid ? (b - a) / seconds : null });
  }
  return points;
}

/** A gauge's value at each sample. */
export function gaugeSeries(samples: Stats[], read: Read): Point[] {
  return samples.map((sample) => {
    const value = read(sample);
    return { t: sample.ts_ms, value: isNumber(value) ? value : null };
  });
}

/** Reads `module.<name>` of a sample (AGENT.STATS counters may be missing on older modules). */
export function moduleStat(name: string, scale = 1): Read {
  return (sample) => {
    const value = sample.module[name];
    return typeof value === 'number' ? value * scale : undefined;
  };
}

function isNumber(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** Whether any point has a value: an empty chart shows "waiting for data" instead. */
export function hasValues(points: Point[]): boolean {
  return points.some((point) => point.value !== null);
}
