import { connect } from 'node:net';
import { type DaemonResponse, parseResponse } from '../daemon/protocol.ts';

/** Sends one request line to the daemon and resolves with its one-line answer, within timeoutMs. */
export function askDaemon(
  socketPath: string,
  request: object,
  timeoutMs: number,
  maxBytes = 4096,
): Promise<DaemonResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let buffer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer from ${socketPath} within ${timeoutMs} ms`));
    }, timeoutMs);
    const finish = (outcome: () => void) => {
      clearTimeout(timer);
      socket.destroy();
      outcome();
    };
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const newline = buffer.indexOf('\n');
      if (newline < 0) {
        if (buffer.length > maxBytes) finish(() => reject(new Error('answer too long')));
        return;
      }
      const response = parseResponse(buffer.slice(0, newline));
      finish(() => (response ? resolve(response) : reject(new Error('unreadable answer from the daemon'))));
    });
    socket.once('error', (error) => finish(() => reject(error)));
    socket.once('close', () => finish(() => reject(new Error('the daemon closed the connection'))));
  });
}
