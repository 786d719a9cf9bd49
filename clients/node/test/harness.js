// Real valkey-server processes with libagentic.so and the tiny model, on free loopback ports, each
// in its own temporary directory; stop() ends exactly the processes started here, by pid.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Redis from 'iovalkey';

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const MODULE = join(REPO_ROOT, 'target', 'release', 'libagentic.so');
export const TINY_MODEL = join(REPO_ROOT, 'model', 'out', 'tiny');
const START_TIMEOUT_MS = 30_000;

/** Why the suite cannot run here, or null. Under CI=true a missing part fails instead of skipping,
 * because `make test` builds everything and a skipped suite would hide a broken setup. */
export function missingPrerequisite() {
  let reason = null;
  if (!existsSync(MODULE)) reason = `${MODULE} is missing: make build`;
  else if (!existsSync(join(TINY_MODEL, 'model.onnx'))) reason = `${TINY_MODEL} is missing: make tiny-model`;
  if (reason && ['1', 'true', 'yes'].includes((process.env.CI || '').toLowerCase())) {
    throw new Error(`${reason} (CI=true: make test should have provided it)`);
  }
  return reason;
}

export function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.unref();
    server.on('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

export async function waitUntil(check, what, timeoutMs = START_TIMEOUT_MS) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not up yet: connection refused, LOADING, CLUSTERDOWN ...
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function infoField(info, name) {
  const line = info.split('\r\n').find((l) => l.startsWith(`${name}:`));
  return line === undefined ? undefined : line.slice(name.length + 1);
}

/** A plain client of one node; no retries, so a dead server fails a test instead of hanging it. */
export function nodeClient(port) {
  return new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, lazyConnect: false, retryStrategy: () => null });
}

class Node {
  constructor(dir, port, extraArgs) {
    this.dir = dir;
    this.port = port;
    this.log = join(dir, 'valkey.log');
    const fd = openSync(this.log, 'a');
    this.process = spawn(
      'valkey-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir,
        ...extraArgs, '--loadmodule', MODULE, 'model-dir', TINY_MODEL],
      { stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    this.exited = new Promise((ok) => this.process.once('exit', ok));
    this.running = true;
    this.exited.then(() => { this.running = false; });
  }

  async stop() {
    if (!this.running) return;
    this.process.kill('SIGTERM');
    const timer = setTimeout(() => this.running && this.process.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }

  tail() {
    try {
      return readFileSync(this.log, 'utf8').slice(-2000);
    } catch {
      return '';
    }
  }
}

/** Runs `fn` on a fresh connection to `port` (a client that failed to connect does not retry). */
async function withClient(port, fn) {
  const client = nodeClient(port);
  client.on('error', () => {});
  try {
    return await fn(client);
  } finally {
    client.disconnect();
  }
}

async function modelReady(client) {
  return infoField(await client.info('agentic_classify'), 'agentic_model_status') === 'ready';
}

/** One server; `stop()` stops it and removes its directory. */
export async function startServer() {
  const dir = mkdtempSync(join(tmpdir(), 'agentic-node-'));
  const node = new Node(dir, await freePort(), []);
  try {
    await waitUntil(async () => {
      if (!node.running) throw new Error('exited');
      return withClient(node.port, modelReady);
    }, 'valkey-server and the model');
  } catch (e) {
    await node.stop();
    const log = node.tail();
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`valkey-server did not start (${e.message}):\n${log}`);
  }
  return {
    port: node.port,
    async stop() {
      await node.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const SLOT_RANGES = [[0, 5460], [5461, 10922], [10923, 16383]];

/** Three primaries with cluster-enabled yes, slots split evenly, joined with CLUSTER MEET;
 * `stop()` stops every node it started, by pid. */
export async function startCluster() {
  const dir = mkdtempSync(join(tmpdir(), 'agentic-node-cluster-'));
  const ports = new Set();
  while (ports.size < 6) ports.add(await freePort()); // a client and a bus port per node, all different
  const [p0, b0, p1, b1, p2, b2] = [...ports];
  const layout = [[p0, b0], [p1, b1], [p2, b2]];
  const nodes = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  const clients = [];
  try {
    layout.forEach(([port, bus], i) => {
      const nodeDir = join(dir, `node${i}`);
      mkdirSync(nodeDir);
      nodes.push(new Node(nodeDir, port, ['--cluster-enabled', 'yes', '--cluster-port', String(bus),
        '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000']));
    });
    await waitUntil(async () => {
      if (nodes.some((n) => !n.running)) throw new Error('a node exited');
      for (const n of nodes) if ((await withClient(n.port, (c) => c.ping())) !== 'PONG') return false;
      return true;
    }, 'the nodes');
    for (const n of nodes) {
      const c = nodeClient(n.port);
      c.on('error', () => {});
      clients.push(c);
    }
    for (const [i, c] of clients.entries()) await c.call('CLUSTER', 'ADDSLOTSRANGE', ...SLOT_RANGES[i]);
    for (const [port, bus] of layout.slice(1)) await clients[0].call('CLUSTER', 'MEET', '127.0.0.1', port, bus);
    await waitUntil(async () => {
      for (const c of clients) {
        if (infoField(await c.call('CLUSTER', 'INFO'), 'cluster_state') !== 'ok') return false;
        if (!(await modelReady(c))) return false;
      }
      return true;
    }, 'cluster_state:ok and the model on every node');
  } catch (e) {
    const logs = nodes.map((n) => n.tail()).join('\n');
    await stop();
    throw new Error(`the cluster did not form (${e.message}):\n${logs}`);
  } finally {
    clients.forEach((c) => c.disconnect());
  }
  return { ports: layout.map(([port]) => port), stop };
}

/** AGENT.STATS' flat name/value array as a Map of numbers. */
export function statsMap(reply) {
  const stats = new Map();
  for (let i = 0; i < reply.length; i += 2) stats.set(reply[i], Number(reply[i + 1]));
  return stats;
}
