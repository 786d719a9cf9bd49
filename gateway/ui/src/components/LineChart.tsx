import { linearScale, linePath, maxValue, niceTicks, timeLabel, timeTicks } from '../lib/chart';
import type { Point } from '../lib/rates';

export interface ChartSeries {
  name: string;
  color: string;
  points: Point[];
}

interface Props {
  title: string;
  testId: string;
  series: ChartSeries[];
  /** The time at the right edge (the newest sample) and how much history the chart spans. */
  endT: number;
  spanMs: number;
  format: (value: number) => string;
  /** 1024 for bytes: ticks round in KiB/MiB/GiB. */
  tickBase?: 10 | 1024;
}

const WIDTH = 480;
const HEIGHT = 170;
const MARGIN = { left: 48, right: 10, top: 10, bottom: 22 };

/** A small multi-series line chart over the last `spanMs`, drawn as plain SVG. */
export function LineChart({ title, testId, series, endT, spanMs, format, tickBase = 10 }: Props) {
  const ticks = niceTicks(maxValue(series.map((s) => s.points)), 4, tickBase);
  const top = ticks.at(-1) ?? 1;
  const x = linearScale([endT - spanMs, endT], [MARGIN.left, WIDTH - MARGIN.right]);
  const y = linearScale([0, top], [HEIGHT - MARGIN.bottom, MARGIN.top]);
  const pointCount = series.reduce((n, s) => n + s.points.filter((p) => p.value !== null).length, 0);

  return (
    <figure className="chart" data-testid={testId} data-points={pointCount}>
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${WIDTH} ${HEIGHT}`} role="img" aria-label={title}>
        {ticks.map((tick) => (
          <g key={tick} className="chart-grid">
            <line x1={MARGIN.left} x2={WIDTH - MARGIN.right} y1={y(tick)} y2={y(tick)} />
            <text x={MARGIN.left - 6} y={y(tick)} textAnchor="end" dominantBaseline="middle">
              {format(tick)}
            </text>
          </g>
        ))}
        {timeTicks(spanMs).map((ago) => (
          <text key={ago} className="chart-axis" x={x(endT - ago)} y={HEIGHT - 6} textAnchor={ago === 0 ? 'end' : 'middle'}>
            {timeLabel(ago)}
          </text>
        ))}
        {series.map((s) => (
          <path key={s.name} d={linePath(s.points, x, y)} fill="none" stroke={s.color} strokeWidth={1.8} strokeLinejoin="round" />
        ))}
      </svg>
      <ul className="chart-legend">
        {series.map((s) => {
          const latest = s.points.findLast((p) => p.value !== null)?.value;
          return (
            <li key={s.name}>
              <span className="legend-swatch" style={{ background: s.color }} aria-hidden="true" />
              {s.name}
              <strong>{latest === undefined || latest === null ? '–' : format(latest)}</strong>
            </li>
          );
        })}
      </ul>
      {pointCount === 0 && <p className="chart-empty muted">waiting for data…</p>}
    </figure>
  );
}
