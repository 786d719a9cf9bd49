// A SocketFactory for component tests: records each connection and lets the test play the server.
import { act } from '@testing-library/react';
import type { SocketFactory, SocketHandlers } from '../lib/socket';
import type { EntriesMessage } from '../lib/types';

export interface FakeConnection {
  url: string;
  closed: boolean;
  open(): void;
  send(frame: EntriesMessage | { type: 'error'; message: string }): void;
  drop(): void;
}

export function fakeSockets(): { factory: SocketFactory; connections: FakeConnection[] } {
  const connections: FakeConnection[] = [];
  const factory: SocketFactory = (url: string, handlers: SocketHandlers) => {
    const connection: FakeConnection = {
      url,
      closed: false,
      open: () => act(() => handlers.onOpen()),
      send: (frame) => act(() => handlers.onMessage(JSON.stringify(frame))),
      drop: () => act(() => handlers.onClose()),
    };
    connections.push(connection);
    return {
      close() {
        connection.closed = true;
      },
    };
  };
  return { factory, connections };
}
