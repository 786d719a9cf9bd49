// @vitest-environment jsdom
import { cleanup, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it } from 'vitest';
import { LineChart } from './LineChart';

afterEach(cleanup);

describe('LineChart', () => {
  it('draws one path per series, counts its points and shows the latest values', () => {
    render(
      <LineChart
        title="Throughput"
        testId="chart-throughput"
        endT={300_000}
        spanMs={300_000}
        format={(v) => `${v}/s`}
        series={[
          {
            name: 'classified',
            color: '#000',
            points: [
              { t: 100_000, value: 4 },
              { t: 200_000, value: null },
              { t: 300_000, value: 6 },
            ],
          },
          { name: 'delivered', color: '#f00', points: [{ t: 300_000, value: 2 }] },
        ]}
      />,
    );
    const figure = screen.getByTestId('chart-throughput');
    expect(figure.dataset.points).toBe('3');
    const paths = [...figure.querySelectorAll('path')].map((p) => p.getAttribute('d'));
    expect(paths).toHaveLength(2);
    // The break at the missing point starts a new line.
    expect(paths[0]!.match(/M/g)).toHaveLength(2);
    expect(figure.textContent).toContain('classified6/s');
    expect(figure.textContent).toContain('-5m');
    expect(figure.textContent).toContain('now');
  });

  it('says it waits for data when there is none', () => {
    render(
      <LineChart
        title="Latency"
        testId="chart-latency"
        endT={0}
        spanMs={300_000}
        format={String}
        series={[{ name: 'p99', color: '#000', points: [] }]}
      />,
    );
    expect(screen.getByTestId('chart-latency').dataset.points).toBe('0');
    expect(screen.getByText('waiting for data…')).toBeTruthy();
  });
});
