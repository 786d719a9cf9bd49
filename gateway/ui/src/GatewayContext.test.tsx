// @vitest-environment jsdom
import { cleanup, render, screen } from '@testing-library/react';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GatewayProvider, useGateway } from './GatewayContext';

function ShowToken() {
  const { token, config } = useGateway();
  return <p data-testid="gateway">{`${config.demo_users.join(',')} token=${token}`}</p>;
}

function renderWithConfig(config: object, storedToken: string | null) {
  vi.stubGlobal(
    'fetch',
    vi.fn(async () => new Response(JSON.stringify(config), { status: 200 })),
  );
  render(
    <GatewayProvider storedToken={storedToken}>
      <ShowToken />
    </GatewayProvider>,
  );
}

afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
});

describe('GatewayProvider', () => {
  it('sends the stored token when the gateway wants tokens', async () => {
    renderWithConfig({ auth: true, backlog: 50, demo_users: ['alice'] }, 'tok');
    expect((await screen.findByTestId('gateway')).textContent).toBe('alice token=tok');
  });

  it('sends none when auth is off', async () => {
    renderWithConfig({ auth: false, backlog: 50, demo_users: ['alice', 'bob'] }, 'tok');
    expect((await screen.findByTestId('gateway')).textContent).toBe('alice,bob token=null');
  });

  it('says when the gateway cannot be reached', async () => {
    vi.stubGlobal(
      'fetch',
      vi.fn(async () => new Response('{"error":"valkey down"}', { status: 503 })),
    );
    render(
      <GatewayProvider storedToken={null}>
        <ShowToken />
      </GatewayProvider>,
    );
    expect((await screen.findByRole('alert')).textContent).toBe('Cannot reach the gateway: valkey down');
  });
});
