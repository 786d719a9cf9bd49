import type { ConnectionState } from '../hooks/useLiveFeed';

const LABELS: Record<ConnectionState, string> = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
};

export function ConnectionStatus({ state }: { state: ConnectionState }) {
  return (
    <span className={`connection connection-${state}`} data-testid="connection-status" data-state={state} role="status">
      <span className="connection-dot" aria-hidden="true" />
      {LABELS[state]}
    </span>
  );
}
