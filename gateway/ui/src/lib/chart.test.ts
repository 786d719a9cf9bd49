import { describe, expect, it } from 'vitest';
import { chartSpan, linearScale, linePath, maxValue, niceStep, niceTicks, timeLabel, timeTicks } from './chart';

describe('linearScale', () => {
  it('maps a domain onto a range, inverted ranges included', () => {
    const y = linearScale([0, 100], [200, 0]);
    expect(y(0)).toBe(200);
    expect(y(100)).toBe(0);
    expect(y(25)).toBe(150);
    const x = linearScale([1000, 2000], [40, 440]);
    expect(x(1500)).toBe(240);
  });

  it('maps a zero-width domain to the range start', () => {
    expect(linearScale([5, 5], [10, 20])(5)).toBe(10);
  });
});

describe('niceStep and niceTicks', () => {
  it('rounds steps up to 1, 2 or 5 times a power of ten', () => {
    expect(niceStep(0.7)).toBe(1);
    expect(niceStep(1.3)).toBe(2);
    expect(niceStep(3)).toBe(5);
    expect(niceStep(7)).toBe(10);
    expect(niceStep(230)).toBe(500);
    expect(niceStep(0.03)).toBeCloseTo(0.05);
    expect(niceStep(0)).toBe(1);
  });

  it('covers the maximum with round ticks from zero', () => {
    expect(niceTicks(87)).toEqual([0, 50, 100]);
    expect(niceTicks(100)).toEqual([0, 50, 100]);
    expect(niceTicks(7.3)).toEqual([0, 2, 4, 6, 8]);
    expect(niceTicks(0.3)).toEqual([0, 0.1, 0.2, 0.3]);
    expect(niceTicks(1_500_000)).toEqual([0, 500_000, 1_000_000, 1_500_000]);
  });

  it('makes byte ticks round in binary units', () => {
    const MiB = 1024 * 1024;
    expect(niceTicks(7.6 * MiB, 4, 1024)).toEqual([0, 2 * MiB, 4 * MiB, 6 * MiB, 8 * MiB]);
    expect(niceTicks(900, 4, 1024)).toEqual([0, 500, 1000]);
  });

  it('gives an all-zero chart an axis of 0 to 1', () => {
    expect(niceTicks(0)).toEqual([0, 0.5, 1]);
  });
});

describe('maxValue', () => {
  it('is the largest value over every series, ignoring breaks', () => {
    expect(
      maxValue([
        [
          { t: 0, value: 3 },
          { t: 1, value: null },
        ],
        [{ t: 0, value: 9 }],
      ]),
    ).toBe(9);
    expect(maxValue([])).toBe(0);
  });
});

describe('linePath', () => {
  const identity = (v: number) => v;

  it('draws through the points', () => {
    expect(
      linePath(
        [
          { t: 0, value: 10 },
          { t: 5, value: 20 },
          { t: 10, value: 15 },
        ],
        identity,
        identity,
      ),
    ).toBe('M0,10 L5,20 L10,15');
  });

  it('breaks the line at a missing point', () => {
    const points = [
      { t: 0, value: 1 },
      { t: 1, value: 2 },
      { t: 2, value: null },
      { t: 3, value: 4 },
    ];
    expect(linePath(points, identity, identity)).toBe('M0,1 L1,2 M3,4');
  });

  it('applies the scales and rounds to a tenth of a pixel', () => {
    const x = linearScale([0, 3], [0, 100]);
    const y = linearScale([0, 1], [100, 0]);
    expect(
      linePath(
        [
          { t: 1, value: 0.5 },
          { t: 2, value: 1 },
        ],
        x,
        y,
      ),
    ).toBe('M33.3,50 L66.7,0');
  });

  it('is empty without values', () => {
    expect(linePath([{ t: 0, value: null }], identity, identity)).toBe('');
  });
});

describe('time axis', () => {
  it('picks the smallest step that gives at most six intervals', () => {
    expect(timeTicks(30_000)).toEqual([0, 5_000, 10_000, 15_000, 20_000, 25_000, 30_000]);
    expect(timeTicks(90_000)).toEqual([0, 15_000, 30_000, 45_000, 60_000, 75_000, 90_000]);
    expect(timeTicks(300_000)).toEqual([0, 60_000, 120_000, 180_000, 240_000, 300_000]);
  });

  it('labels in seconds below a whole minute', () => {
    expect([0, 15_000, 60_000, 120_000].map(timeLabel)).toEqual(['now', '-15s', '-1m', '-2m']);
  });

  it('spans the history there is, between the bounds', () => {
    expect(chartSpan(undefined, 10_000, 30_000, 300_000)).toBe(30_000);
    expect(chartSpan(0, 10_000, 30_000, 300_000)).toBe(30_000);
    expect(chartSpan(0, 95_000, 30_000, 300_000)).toBe(95_000);
    expect(chartSpan(0, 900_000, 30_000, 300_000)).toBe(300_000);
  });
});
