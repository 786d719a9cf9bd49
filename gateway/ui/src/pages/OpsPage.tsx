import { useEffect, useMemo, useState } from 'react';
import { LineChart } from '../components/LineChart';
import { api, errorMessage } from '../lib/api';
import { bytes, compactNumber } from '../lib/format';
import { OPS_CHARTS, plotChart } from '../lib/opsCharts';
import { chartSpan } from '../lib/chart';
import { appendSample, WINDOW_MS } from '../lib/rates';
import type { Stats } from '../lib/types';

const POLL_MS = 1000;
/** The charts never span less than this, so that the first samples do not stretch over the width. */
const MIN_SPAN_MS = 30_000;

/** Polls /api/stats every second and keeps the last five minutes. */
function useStatsHistory(): { samples: Stats[]; error: string | null } {
  const [samples, setSamples] = useState<Stats[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const poll = async () => {
      const started = Date.now();
      try {
        const sample = await api.stats();
        if (stopped) return;
        setSamples((previous) => appendSample(previous, sample));
        setError(null);
      } catch (e) {
        if (!stopped) setError(errorMessage(e));
      }
      // One request at a time, one per second.
      if (!stopped) timer = setTimeout(poll, Math.max(0, POLL_MS - (Date.now() - started)));
    };
    void poll();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
  }, []);
  return { samples, error };
}

export function OpsPage() {
  const { samples, error } = useStatsHistory();
  const latest = samples.at(-1);
  const charts = useMemo(() => OPS_CHARTS.map((spec) => ({ spec, series: plotChart(spec, samples) })), [samples]);
  const spanMs = latest ? chartSpan(samples[0]?.ts_ms, latest.ts_ms, MIN_SPAN_MS, WINDOW_MS) : MIN_SPAN_MS;

  return (
    <main className="page page-wide">
      <h1>Operations</h1>
      <p className="muted">Live from /api/stats, sampled every second; the charts show up to the last five minutes.</p>
      {error && (
        <p className="error" role="alert" data-testid="stats-error">
          Stats unavailable: {error}
        </p>
      )}
      {!latest && !error && <p className="muted">Waiting for the first sample…</p>}
      {latest && (
        <>
          <CurrentValues stats={latest} />
          <div className="charts">
            {charts.map(({ spec, series }) =>
              spec.id === 'sidecars' && latest.server.sidecars_live === 0 ? (
                <figure key={spec.id} className="chart" data-testid="chart-sidecars" data-points={0}>
                  <figcaption>{spec.title}</figcaption>
                  <p className="muted chart-note">no sidecars: classification runs on the module's CPU pool</p>
                </figure>
              ) : (
                <LineChart
                  key={spec.id}
                  testId={`chart-${spec.id}`}
                  title={
                    spec.id === 'sidecars' && latest.server.sidecar_devices ? `${spec.title}: ${latest.server.sidecar_devices}` : spec.title
                  }
                  series={series}
                  endT={latest.ts_ms}
                  spanMs={spanMs}
                  format={spec.format}
                  tickBase={spec.tickBase}
                />
              ),
            )}
          </div>
        </>
      )}
    </main>
  );
}

function CurrentValues({ stats }: { stats: Stats }) {
  const rows: [string, string][] = [
    ['model status', stats.server.model_status || '–'],
    ['backend', stats.server.backend || '–'],
    [
      'memory',
      stats.server.maxmemory > 0
        ? `${bytes(stats.server.used_memory)} of ${bytes(stats.server.maxmemory)}`
        : bytes(stats.server.used_memory),
    ],
    ['open sockets', compactNumber(stats.gateway.sockets)],
    ['entries sent', compactNumber(stats.gateway.entries_sent)],
    ['resyncs', compactNumber(stats.gateway.resyncs)],
    ['dropped', compactNumber(stats.gateway.dropped)],
    ['sidecars', stats.server.sidecars_live > 0 ? `${stats.server.sidecars_live} (${stats.server.sidecar_devices})` : 'none'],
  ];
  return (
    <dl className="current" data-testid="ops-current">
      {rows.map(([name, value]) => (
        <div key={name} className="current-item">
          <dt>{name}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}
