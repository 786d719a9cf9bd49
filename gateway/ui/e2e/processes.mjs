// Child processes of the end-to-end test: free ports, start with a log file, stop by PID, wait.
import { spawn } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import net from 'node:net';

/** A loopback port nobody listens on right now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** Starts `command`, its stdout and stderr going to `logFile`. */
export function start(name, command, args, logFile) {
  const log = createWriteStream(logFile);
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('error', (error) => log.write(`spawn failed: ${error.message}\n`));
  return { name, child, logFile, exited, pid: child.pid };
}

/** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
export async function stop(proc, graceMs = 3000) {
  if (!proc || proc.child.exitCode !== null || proc.child.signalCode !== null || proc.pid === undefined) return;
  try {
    process.kill(proc.pid, 'SIGTERM');
  } catch {
    return; // already gone
  }
  const timeout = new Promise((resolve) => setTimeout(() => resolve('timeout'), graceMs));
  if ((await Promise.race([proc.exited, timeout])) === 'timeout') {
    try {
      process.kill(proc.pid, 'SIGKILL');
    } catch {
      // exited in between
    }
    await proc.exited;
  }
}

/** The last `lines` lines of a process's log, for failure reports. */
export function logTail(proc, lines = 25) {
  try {
    return readFileSync(proc.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Polls `probe` until it returns a truthy value (returned) or `timeoutMs` passes (throws). */
export async function waitFor(what, probe, timeoutMs = 15_000, intervalMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let lastError;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${lastError.message})` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
