// A minimal RESP2 client for the end-to-end test: one connection, one command at a time.
import net from 'node:net';

export class RespError extends Error {}

export class RespClient {
  static connect(port, host = '127.0.0.1') {
    return new Promise((resolve, reject) => {
      const socket = net.createConnection({ port, host }, () => {
        socket.off('error', reject);
        resolve(new RespClient(socket));
      });
      socket.once('error', reject);
    });
  }

  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.waiting = null;
    socket.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk]);
      this.deliver();
    });
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  /** Sends one command; resolves with its reply (errors reject with RespError). */
  command(...args) {
    if (this.waiting) throw new Error('one command at a time');
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      const parts = [`*${args.length}\r\n`];
      for (const arg of args) {
        const text = String(arg);
        parts.push(`$${Buffer.byteLength(text)}\r\n${text}\r\n`);
      }
      this.socket.write(parts.join(''));
    });
  }

  close() {
    this.socket.destroy();
  }

  deliver() {
    if (!this.waiting) return;
    const parsed = parse(this.buffer, 0);
    if (!parsed) return;
    this.buffer = this.buffer.subarray(parsed.end);
    const { resolve, reject } = this.waiting;
    this.waiting = null;
    if (parsed.value instanceof RespError) reject(parsed.value);
    else resolve(parsed.value);
  }

  fail(error) {
    if (!this.waiting) return;
    const { reject } = this.waiting;
    this.waiting = null;
    reject(error);
  }
}

/** One reply starting at `start`: { value, end } or null when incomplete. */
function parse(buffer, start) {
  const lineEnd = buffer.indexOf('\r\n', start);
  if (lineEnd < 0) return null;
  const kind = String.fromCharCode(buffer[start]);
  const line = buffer.toString('utf8', start + 1, lineEnd);
  const next = lineEnd + 2;
  switch (kind) {
    case '+':
      return { value: line, end: next };
    case '-':
      return { value: new RespError(line), end: next };
    case ':':
      return { value: Number(line), end: next };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null, end: next };
      if (buffer.length < next + length + 2) return null;
      return { value: buffer.toString('utf8', next, next + length), end: next + length + 2 };
    }
    case '*': {
      const count = Number(line);
      if (count < 0) return { value: null, end: next };
      const items = [];
      let at = next;
      for (let i = 0; i < count; i++) {
        const item = parse(buffer, at);
        if (!item) return null;
        items.push(item.value);
        at = item.end;
      }
      return { value: items, end: at };
    }
    default:
      throw new Error(`unexpected RESP type ${JSON.stringify(kind)}`);
  }
}
