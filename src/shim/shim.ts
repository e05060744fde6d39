import type { Readable } from 'node:stream';
import type { DaemonResponse } from '../daemon/protocol.ts';
import { createConnectSplitter } from './connect-line.ts';

/** The real mosh-server as the shim sees it: its stdout and how it ended. */
export interface ServerProcess {
  stdout: Readable;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The shim's edges, injected. */
export interface ShimDeps {
  startServer: () => ServerProcess;
  /** Asks the daemon to open `port`; resolves with its answer or rejects (unreachable, timeout). */
  askDaemon: (port: number) => Promise<DaemonResponse>;
  writeStdout: (data: Buffer) => Promise<void>;
  warn: (message: string) => void;
}

/**
 * Runs the real mosh-server with stdout piped through: every byte passes unchanged and in order, but
 * the MOSH CONNECT line is held until the daemon says the port is open (or refuses, or does not
 * answer in time: then it passes anyway, with a warning). Resolves with the server's exit status.
 */
export async function runShim(
  deps: ShimDeps,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  const server = deps.startServer();
  const splitter = createConnectSplitter();
  let writes = Promise.resolve();
  const write = (data: Buffer) => {
    if (data.length > 0) writes = writes.then(() => deps.writeStdout(data));
  };
  let asked: Promise<void> = Promise.resolve();
  server.stdout.on('data', (chunk: Buffer) => {
    const { pass, connect } = splitter.push(chunk);
    write(pass);
    if (connect) {
      asked = deps
        .askDaemon(connect.port)
        .then(
          (answer) => {
            if (!answer.ok)
              deps.warn(`moshwall: the firewall was not opened for port ${connect.port}: ${answer.error}`);
          },
          (error: unknown) => {
            const why = error instanceof Error ? error.message : String(error);
            deps.warn(
              `moshwall: could not reach the moshwall daemon (${why}); its poll will open port ${connect.port}`,
            );
          },
        )
        .then(() => write(splitter.release()));
    }
  });
  const ended = new Promise<void>((resolve) => server.stdout.once('close', () => resolve()));
  const status = await server.exited;
  await ended;
  await asked;
  write(splitter.end());
  await writes;
  return status;
}
