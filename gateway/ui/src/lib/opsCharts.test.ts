import { describe, expect, it } from 'vitest';
import { stats } from '../test/fixtures';
import { OPS_CHARTS, plotChart } from './opsCharts';

const chart = (id: string) => OPS_CHARTS.find((c) => c.id === id)!;
const byName = (series: ReturnType<typeof plotChart>, name: string) => series.find((s) => s.name === name)!.points.map((p) => p.value);

describe('operations charts', () => {
  it('plots throughput as rates of the module and gateway counters', () => {
    const samples = [
      stats(0, { pipeline_classified: 0, pipeline_delivered: 0, fanout_deliveries: 0 }, { entries_sent: 0 }),
      stats(2000, { pipeline_classified: 10, pipeline_delivered: 8, fanout_deliveries: 80 }, { entries_sent: 6 }),
    ];
    const series = plotChart(chart('throughput'), samples);
    expect(series.map((s) => s.name)).toEqual(['classified', 'articles delivered', 'feed deliveries', 'sent to browsers']);
    expect(byName(series, 'classified')).toEqual([5]);
    expect(byName(series, 'feed deliveries')).toEqual([40]);
    expect(byName(series, 'sent to browsers')).toEqual([3]);
  });

  it('plots classify latency in milliseconds', () => {
    const series = plotChart(chart('latency'), [stats(0, { classify_latency_us_p99: 12_000 }, { latency_ms_p99: 40 })]);
    expect(byName(series, 'classify p99')).toEqual([12]);
    expect(byName(series, 'ingest → browser p99')).toEqual([40]);
  });

  it('shows maxmemory only when a limit is set', () => {
    expect(plotChart(chart('memory'), [stats(0)]).map((s) => s.name)).toEqual(['used_memory']);
    const limited = plotChart(chart('memory'), [stats(0, {}, {}, { maxmemory: 4096 })]);
    expect(byName(limited, 'maxmemory')).toEqual([4096]);
  });

  it('has a chart for each part of the operations page', () => {
    expect(OPS_CHARTS.map((c) => c.id)).toEqual(['throughput', 'latency', 'backlog', 'memory', 'sidecars']);
  });
});
