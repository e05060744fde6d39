import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { MoshwallError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { type DaemonResponse, formatResponse, MAX_REQUEST_BYTES } from './protocol.ts';
import { overShare } from './slots.ts';

/** Limits that keep one client, or one user, from hurting the daemon or locking others out. */
export interface ServerLimits {
  /** Connections at once, from everyone. */
  maxConnections: number;
  /** Connections at once from one uid (enforced once more than this many are open in all). */
  perUserConnections: number;
  /** A connection must have sent its whole request line within this long. */
  requestDeadlineMs: number;
  /** No connection lives longer than this, however it behaves. */
  lifetimeMs: number;
}

export const DEFAULT_LIMITS: ServerLimits = {
  maxConnections: 256,
  perUserConnections: 8,
  requestDeadlineMs: 2000,
  lifetimeMs: 30_000,
};

/** How the server learns who is on the other end of its connections (by our end's socket inode). */
export interface PeerIdentity {
  /** Our end's socket inode for an accepted connection, or undefined when it cannot be read. */
  inodeOf(socket: Socket): number | undefined;
  /** The uid behind each inode (undefined where it cannot be known). */
  identify(inodes: number[]): Promise<Map<number, number | undefined>>;
}

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
    throw new MoshwallError(
      'EUNSAFE',
      `${path} exists and is not a socket; refusing to replace it (move it away, then start the daemon)`,
      { context: { path } },
    );
  if (await answers(path)) {
    throw new MoshwallError(
      'ELOCK',
      `another moshwall daemon answers on ${path}; stop it first (systemctl stop moshwall) or use that one`,
      { context: { path } },
    );
  }
  unlinkSync(path);
}

/**
 * Serves one connection: exactly one request line, read within the request deadline, answered, and the
 * connection ended. Nothing more is read after the line (a client that floods or never reads its reply
 * costs at most one line's buffer), and the lifetime bounds a client that never lets go.
 */
function serveConnection(socket: Socket, handle: LineHandler, limits: ServerLimits, log: Logger): void {
  let buffer = '';
  let answered = false;
  const finish = (response: DaemonResponse) => {
    if (answered) return;
    answered = true;
    socket.pause();
    socket.removeAllListeners('data');
    if (!socket.destroyed) socket.end(formatResponse(response));
  };
  const deadline = setTimeout(
    () => finish({ ok: false, error: `no request within ${limits.requestDeadlineMs} ms` }),
    limits.requestDeadlineMs,
  );
  const lifetime = setTimeout(() => socket.destroy(), limits.lifetimeMs);
  socket.once('close', () => {
    clearTimeout(deadline);
    clearTimeout(lifetime);
  });
  socket.setEncoding('utf8');
  socket.on('error', (error) => log.debug('client-error', { error: error.message }));
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    const newline = buffer.indexOf('\n');
    if (newline < 0) {
      if (Buffer.byteLength(buffer) > MAX_REQUEST_BYTES) {
        clearTimeout(deadline);
        finish({ ok: false, error: `request longer than ${MAX_REQUEST_BYTES} bytes` });
      }
      return;
    }
    clearTimeout(deadline);
    const line = buffer.slice(0, newline).trim();
    buffer = '';
    socket.pause();
    socket.removeAllListeners('data');
    if (line === '') {
      finish({ ok: false, error: 'empty request' });
      return;
    }
    handle(line)
      .catch((error: unknown) => ({
        ok: false as const,
        error: `internal error: ${error instanceof Error ? error.message : String(error)}`,
      }))
      .then(finish);
  });
}

/**
 * Keeps each uid to its share of the connection slots: while more connections are open than one uid
 * may hold, the unidentified ones are identified (one `ss` run for all of them) and the newest of a
 * uid over its share are told so and closed. Below that count nothing is looked up.
 */
function createSlotKeeper(limits: ServerLimits, identity: PeerIdentity | undefined, log: Logger) {
  interface Slot {
    id: number;
    socket: Socket;
    inode: number | undefined;
    uid: number | undefined;
    looked: boolean;
  }
  const slots: Slot[] = [];
  let nextId = 0;
  let running = false;
  let again = false;
  const enforce = async (): Promise<void> => {
    if (identity === undefined) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        const pending = slots.filter((slot) => !slot.looked && slot.inode !== undefined);
        const uids = await identity.identify(pending.map((slot) => slot.inode as number));
        for (const slot of pending) {
          slot.looked = true;
          slot.uid = uids.get(slot.inode as number);
        }
        const excess = new Set(overShare(slots, limits.perUserConnections));
        for (const slot of slots.filter((candidate) => excess.has(candidate.id))) {
          log.debug('socket-share-exceeded', { uid: slot.uid ?? -1, share: limits.perUserConnections });
          const reply = formatResponse({
            ok: false,
            error: `too many connections from uid ${slot.uid} at once (${limits.perUserConnections} allowed)`,
          });
          if (!slot.socket.destroyed) slot.socket.end(reply);
          setTimeout(() => slot.socket.destroy(), 100).unref();
        }
      } while (again);
    } catch (error) {
      log.debug('peer-identity-failed', { error: error instanceof Error ? error.message : String(error) });
    } finally {
      running = false;
    }
  };
  return (socket: Socket): void => {
    const slot: Slot = {
      id: nextId++,
      socket,
      inode: identity?.inodeOf(socket),
      uid: undefined,
      looked: false,
    };
    slots.push(slot);
    socket.once('close', () => {
      const index = slots.indexOf(slot);
      if (index >= 0) slots.splice(index, 1);
    });
    if (slots.length > limits.perUserConnections) void enforce();
  };
}

/** Listens on a Unix socket every local user may connect to (0666, in a root-only directory). */
export async function startSocketServer(
  path: string,
  handle: LineHandler,
  log: Logger,
  identity?: PeerIdentity,
  limits: ServerLimits = DEFAULT_LIMITS,
): Promise<Server> {
  await clearStaleSocket(path);
  const keepShare = createSlotKeeper(limits, identity, log);
  const server = createServer((socket) => {
    keepShare(socket);
    serveConnection(socket, handle, limits, log);
  });
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
