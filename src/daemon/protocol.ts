import type { PortRange } from '../model.ts';

/** The longest request line the daemon reads; anything longer is refused and the connection closed. */
export const MAX_REQUEST_BYTES = 512;

/** What a client (the shim) may ask. "open" is only a nudge: the daemon verifies everything itself. */
export type DaemonRequest = { op: 'open'; port: number } | { op: 'ping' } | { op: 'opened' };

/** When the daemon added the rule for a port (Unix ms); ports it found open at start are not listed. */
export interface OpenedPort {
  port: number;
  family: 'v4' | 'v6';
  atMs: number;
}

/** How the firewall treats a port after the daemon's reconcile. */
export type PortState = 'open' | 'covered' | 'unfiltered';

export type DaemonResponse =
  | { ok: true; op: 'open'; port: number; state: PortState }
  | { ok: true; op: 'ping'; version: string }
  | { ok: true; op: 'opened'; opened: OpenedPort[] }
  | { ok: false; error: string; port?: number };

/** The request in one line of text, or why it is not one (the reply tells the client). */
export function parseRequest(line: string, range: PortRange): DaemonRequest | { error: string } {
  if (Buffer.byteLength(line) > MAX_REQUEST_BYTES)
    return { error: `request longer than ${MAX_REQUEST_BYTES} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { error: 'request is not JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    return { error: 'request is not a JSON object' };
  const fields = value as Record<string, unknown>;
  const extra = Object.keys(fields).filter((key) => key !== 'op' && key !== 'port');
  if (extra.length > 0) return { error: `unknown field ${JSON.stringify(extra[0])}` };
  if (fields.op === 'ping')
    return fields.port === undefined ? { op: 'ping' } : { error: 'ping takes no port' };
  if (fields.op === 'opened')
    return fields.port === undefined ? { op: 'opened' } : { error: 'opened takes no port' };
  if (fields.op !== 'open') return { error: `unknown op ${JSON.stringify(fields.op ?? null).slice(0, 40)}` };
  const port = fields.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
    return {
      error: `port must be an integer from 1 to 65535, got ${JSON.stringify(port ?? null).slice(0, 40)}`,
    };
  }
  if (port < range.first || port > range.last) {
    return { error: `port ${port} is outside the mosh range ${range.first}:${range.last}` };
  }
  return { op: 'open', port };
}

/** A response as one line of JSON. */
export function formatResponse(response: DaemonResponse): string {
  return `${JSON.stringify(response)}\n`;
}

/** A response line as the client reads it, or undefined when it is not one. */
export function parseResponse(line: string): DaemonResponse | undefined {
  try {
    const value: unknown = JSON.parse(line);
    if (typeof value !== 'object' || value === null || typeof (value as { ok?: unknown }).ok !== 'boolean') {
      return undefined;
    }
    return value as DaemonResponse;
  } catch {
    return undefined;
  }
}
