// The gateway's /api/config, loaded once, and the token user calls send when auth is on.
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from 'react';
import { api, errorMessage } from './lib/api';
import type { GatewayConfig } from './lib/types';

export interface Gateway {
  config: GatewayConfig;
  /** The token to send on user calls: the stored one when the gateway wants tokens, else null. */
  token: string | null;
}

const GatewayContext = createContext<Gateway | null>(null);

export function useGateway(): Gateway {
  const gateway = useContext(GatewayContext);
  if (!gateway) throw new Error('useGateway outside GatewayProvider');
  return gateway;
}

export function GatewayProvider({ storedToken, children }: { storedToken: string | null; children: ReactNode }) {
  const [config, setConfig] = useState<GatewayConfig | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(() => {
    setError(null);
    api.config().then(setConfig, (e: unknown) => setError(errorMessage(e)));
  }, []);
  useEffect(load, [load]);

  if (error) {
    return (
      <main className="page">
        <p className="error" role="alert">
          Cannot reach the gateway: {error}
        </p>
        <button type="button" onClick={load}>
          Retry
        </button>
      </main>
    );
  }
  if (!config) {
    return (
      <main className="page">
        <p className="muted">Connecting to the gateway…</p>
      </main>
    );
  }
  return <GatewayContext.Provider value={{ config, token: config.auth ? storedToken : null }}>{children}</GatewayContext.Provider>;
}
