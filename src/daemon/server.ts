import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { MoshwallError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { type DaemonResponse, formatResponse, MAX_REQUEST_BYTES } from './protocol.ts';

/** Limits that keep one client from hurting the daemon. */
export interface ServerLimits {
  maxConnections: number;
  /** A connection idle this long is closed. */
  idleTimeoutMs: number;
  /** Token bucket per connection: burst size and tokens added per second. */
  burst: number;
  perSecond: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 64,
  idleTimeoutMs: 5000,
  burst: 8,
  perSecond: 4,
};

/** Answers one request line; must not throw (the server turns a throw into an error reply anyway). */
export type LineHandler = (line: string) => Promise<DaemonResponse>;

/** True when something answers on the Unix socket at path. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
}

/** Removes a stale socket file at path; refuses when it is not a socket or a daemon answers there. */
async function clearStaleSocket(path: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return;
  }
  if (!isSocket)
    throw new MoshwallError('EINTERNAL', `${path} exists and is not a socket; refusing to replace it`);
  if (await answers(path)) throw new MoshwallError('EINTERNAL', `another moshwall daemon answers on ${path}`);
  unlinkSync(path);
}

/** Serves one connection: newline-delimited requests, answered in order, within the limits. */
function serveConnection(socket: Socket, handle: LineHandler, limits: ServerLimits, log: Logger): void {
  let buffer = '';
  let tokens = limits.burst;
  let lastRefill = Date.now();
  let chain = Promise.resolve();
  const reply = (response: DaemonResponse) => {
    if (!socket.destroyed) socket.write(formatResponse(response));
  };
  socket.setEncoding('utf8');
  socket.setTimeout(limits.idleTimeoutMs, () => socket.destroy());
  socket.on('error', (error) => log.debug('client-error', { error: error.message }));
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let newline = buffer.indexOf('\n');
    while (newline >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      newline = buffer.indexOf('\n');
      if (line === '') continue;
      const now = Date.now();
      tokens = Math.min(limits.burst, tokens + ((now - lastRefill) / 1000) * limits.perSecond);
      lastRefill = now;
      if (tokens < 1) {
        chain = chain.then(() =>
          reply({ ok: false, error: 'rate limited: too many requests on this connection' }),
        );
        continue;
      }
      tokens -= 1;
      chain = chain.then(async () => {
        try {
          reply(await handle(line));
        } catch (error) {
          reply({
            ok: false,
            error: `internal error: ${error instanceof Error ? error.message : String(error)}`,
          });
        }
      });
    }
    if (Buffer.byteLength(buffer) > MAX_REQUEST_BYTES) {
      buffer = '';
      chain = chain.then(() => {
        reply({ ok: false, error: `request longer than ${MAX_REQUEST_BYTES} bytes` });
        socket.end();
      });
    }
  });
}

/** Listens on a Unix socket every local user may connect to (0666, in a root-only directory). */
export async function startSocketServer(
  path: string,
  handle: LineHandler,
  log: Logger,
  limits: ServerLimits = DEFAULT_LIMITS,
): Promise<Server> {
  await clearStaleSocket(path);
  const server = createServer((socket) => serveConnection(socket, handle, limits, log));
  server.maxConnections = limits.maxConnections;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o666);
  server.on('error', (error) => log.error('socket-error', { path, error: error.message }));
  return server;
}
