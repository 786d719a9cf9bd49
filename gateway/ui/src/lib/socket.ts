// The one place that touches the browser's WebSocket, behind a small interface that tests replace.

export interface SocketHandlers {
  onOpen(): void;
  onMessage(text: string): void;
  /** Called once when the socket closes or fails to connect. */
  onClose(): void;
}

export interface FeedSocket {
  close(): void;
}

export type SocketFactory = (url: string, handlers: SocketHandlers) => FeedSocket;

export const browserSocket: SocketFactory = (url, handlers) => {
  const socket = new WebSocket(url);
  socket.onopen = () => handlers.onOpen();
  socket.onmessage = (event) => {
    if (typeof event.data === 'string') handlers.onMessage(event.data);
  };
  // An error is always followed by a close event; reconnecting is decided there.
  socket.onclose = () => handlers.onClose();
  return {
    close() {
      socket.onclose = null;
      socket.onmessage = null;
      socket.close();
    },
  };
};
