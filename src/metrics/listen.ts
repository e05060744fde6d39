import { isIP } from 'node:net';

/** Where the metrics endpoint listens. */
export interface ListenAddress {
  host: string;
  port: number;
}

/** True for 127.0.0.0/8 and ::1 (and ::ffff:127.x). */
export function isLoopback(host: string): boolean {
  if (isIP(host) === 4) return host.startsWith('127.');
  const lower = host.toLowerCase();
  return lower === '::1' || lower.startsWith('::ffff:127.');
}

/**
 * `metrics_listen`'s value: "PORT" (loopback), "HOST:PORT" or "[V6]:PORT" with an IP literal host; a
 * non-loopback host only when `allowPublic`. The error text says what is wrong.
 */
export function parseListen(text: string, allowPublic: boolean): ListenAddress | string {
  let host = '127.0.0.1';
  let portText = text;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(text);
  const v4 = /^([^:[\]]+):(\d+)$/.exec(text);
  if (v6) [, host = '', portText = ''] = v6;
  else if (v4) [, host = '', portText = ''] = v4;
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
    return `expected "PORT", "HOST:PORT" or "[IPV6]:PORT" with a port from 1 to 65535, got "${text}"`;
  if (isIP(host) === 0) return `the host in "${text}" must be an IP address literal`;
  if (!isLoopback(host) && !allowPublic)
    return `"${host}" is not a loopback address; set metrics_allow_public = true to serve metrics beyond this host`;
  return { host, port: Number(portText) };
}
