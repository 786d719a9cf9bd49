// Geometry of the small SVG line charts: value-to-pixel scales, round tick values and path data.
import type { Point } from './rates';

export type Scale = (value: number) => number;

/** Maps [d0, d1] linearly onto [r0, r1]; a zero-width domain maps everything to r0. */
export function linearScale([d0, d1]: [number, number], [r0, r1]: [number, number]): Scale {
  const span = d1 - d0;
  if (span === 0) return () => r0;
  return (value) => r0 + ((value - d0) / span) * (r1 - r0);
}

/** The round step (1, 2 or 5 times a power of ten) at least `rough`. */
export function niceStep(rough: number): number {
  if (!(rough > 0) || !Number.isFinite(rough)) return 1;
  const power = 10 ** Math.floor(Math.log10(rough));
  const fraction = rough / power;
  // Guard against 0.30000000000000004-style leftovers making 3 -> 5.
  const step = fraction <= 1 + 1e-9 ? 1 : fraction <= 2 + 1e-9 ? 2 : fraction <= 5 + 1e-9 ? 5 : 10;
  return step * power;
}

/**
 * Ticks from 0 to a round maximum at least `max`, about `count` intervals. A chart of zeros
 * still gets an axis (0 to 1). With `base` 1024 the ticks are round in the largest power of 1024
 * below `max` (1, 2, 4 ... MiB rather than 1.91 MiB).
 */
export function niceTicks(max: number, count = 4, base: 10 | 1024 = 10): number[] {
  if (base === 1024 && max >= 1024) {
    const unit = 1024 ** Math.floor(Math.log(max) / Math.log(1024));
    return niceTicks(max / unit, count).map((tick) => tick * unit);
  }
  const top = max > 0 && Number.isFinite(max) ? max : 1;
  const step = niceStep(top / count);
  const intervals = Math.ceil(top / step - 1e-9);
  // Rounded so that 0.1 * 3 prints as 0.3.
  return Array.from({ length: intervals + 1 }, (_, i) => Number((i * step).toPrecision(12)));
}

/** The largest value of any point, 0 when there is none. */
export function maxValue(series: Point[][]): number {
  let max = 0;
  for (const points of series) {
    for (const point of points) {
      if (point.value !== null && point.value > max) max = point.value;
    }
  }
  return max;
}

/** SVG path data through the points; a null value ends the current line, the next value starts a new one. */
export function linePath(points: Point[], x: Scale, y: Scale): string {
  const parts: string[] = [];
  let drawing = false;
  for (const point of points) {
    if (point.value === null) {
      drawing = false;
      continue;
    }
    parts.push(`${drawing ? 'L' : 'M'}${round(x(point.t))},${round(y(point.value))}`);
    drawing = true;
  }
  return parts.join(' ');
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}

/** Steps for the time axis, from which the first giving at most `maxTicks` intervals is used. */
const TIME_STEPS_MS = [5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000];

/** How far back each time-axis label sits, in ms (0 = now), for a chart spanning `spanMs`. */
export function timeTicks(spanMs: number, maxTicks = 6): number[] {
  const step = TIME_STEPS_MS.find((s) => spanMs / s <= maxTicks) ?? TIME_STEPS_MS.at(-1)!;
  return Array.from({ length: Math.floor(spanMs / step + 1e-9) + 1 }, (_, i) => i * step);
}

/** "now", "-30s", "-2m": a time-axis label for `agoMs` before the newest sample. */
export function timeLabel(agoMs: number): string {
  if (agoMs === 0) return 'now';
  return agoMs % 60_000 === 0 ? `-${agoMs / 60_000}m` : `-${Math.round(agoMs / 1000)}s`;
}

/**
 * The time a chart spans: the history there is, at least `minMs` so the first samples do not fill
 * the width, at most `maxMs`.
 */
export function chartSpan(firstT: number | undefined, lastT: number, minMs: number, maxMs: number): number {
  const history = firstT === undefined ? 0 : lastT - firstT;
  return Math.min(maxMs, Math.max(minMs, history));
}
