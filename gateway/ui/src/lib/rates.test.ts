import { describe, expect, it } from 'vitest';
import { stats } from '../test/fixtures';
import { appendSample, counterRate, gaugeSeries, hasValues, moduleStat } from './rates';

const values = (points: { value: number | null }[]) => points.map((p) => p.value);

describe('appendSample', () => {
  it('keeps only the last window of samples', () => {
    let samples = [stats(0), stats(1000), stats(2000)];
    samples = appendSample(samples, stats(3500), 2000);
    expect(samples.map((s) => s.ts_ms)).toEqual([2000, 3500]);
  });

  it('ignores a sample that is not newer than the last', () => {
    const samples = [stats(1000)];
    expect(appendSample(samples, stats(1000))).toBe(samples);
    expect(appendSample(samples, stats(500))).toBe(samples);
  });
});

describe('counterRate', () => {
  const classified = moduleStat('pipeline_classified');

  it('turns counter deltas into per-second rates', () => {
    const samples = [
      stats(0, { pipeline_classified: 10 }),
      stats(1000, { pipeline_classified: 60 }),
      stats(3000, { pipeline_classified: 100 }),
    ];
    const points = counterRate(samples, classified);
    expect(points.map((p) => p.t)).toEqual([1000, 3000]);
    expect(values(points)).toEqual([50, 20]);
  });

  it('skips the interval of a counter reset (server restart) and goes on after it', () => {
    const samples = [
      stats(0, { pipeline_classified: 500 }),
      stats(1000, { pipeline_classified: 520 }),
      stats(2000, { pipeline_classified: 3 }), // restarted
      stats(3000, { pipeline_classified: 13 }),
    ];
    expect(values(counterRate(samples, classified))).toEqual([20, null, 10]);
  });

  it('has no rate where the counter is missing', () => {
    const samples = [stats(0, {}), stats(1000, { pipeline_classified: 5 }), stats(2000, { pipeline_classified: 7 })];
    expect(values(counterRate(samples, classified))).toEqual([null, 2]);
  });

  it('reads gateway counters too', () => {
    const samples = [stats(0, {}, { entries_sent: 0 }), stats(500, {}, { entries_sent: 4 })];
    expect(values(counterRate(samples, (s) => s.gateway.entries_sent))).toEqual([8]);
  });

  it('needs two samples', () => {
    expect(counterRate([stats(0, { pipeline_classified: 1 })], classified)).toEqual([]);
  });
});

describe('gaugeSeries', () => {
  it('plots values as they are, scaled, with breaks where missing', () => {
    const samples = [stats(0, { classify_latency_us_p99: 2500 }), stats(1000, {}), stats(2000, { classify_latency_us_p99: 800 })];
    const points = gaugeSeries(samples, moduleStat('classify_latency_us_p99', 1 / 1000));
    expect(points).toEqual([
      { t: 0, value: 2.5 },
      { t: 1000, value: null },
      { t: 2000, value: 0.8 },
    ]);
    expect(hasValues(points)).toBe(true);
    expect(hasValues([{ t: 0, value: null }])).toBe(false);
  });

  it('treats a null (no sample in the gateway latency window) as no value', () => {
    const samples = [stats(0, {}, { latency_ms_p99: null }), stats(1000, {}, { latency_ms_p99: 12 })];
    expect(values(gaugeSeries(samples, (s) => s.gateway.latency_ms_p99))).toEqual([null, 12]);
  });
});
