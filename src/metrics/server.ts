import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ListenAddress } from './listen.ts';

/** Limits that keep slow or hostile scrapers from costing the daemon more than a few sockets. */
export interface MetricsServerLimits {
  /** Connections at once; further ones are closed as they come. */
  maxConnections: number;
  /** The whole request head must arrive within this long (slowloris). */
  headersTimeoutMs: number;
  /** The whole request must arrive within this long. */
  requestTimeoutMs: number;
  /** An idle kept-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** No connection lives longer than this, however it trickles bytes (one answer needs far less). */
  lifetimeMs: number;
}

export const DEFAULT_METRICS_LIMITS: MetricsServerLimits = {
  maxConnections: 16,
  headersTimeoutMs: 2000,
  requestTimeoutMs: 3000,
  keepAliveTimeoutMs: 2000,
  lifetimeMs: 5000,
};

export const CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** The answer to one request: 200 with the text for GET/HEAD /metrics, 405 for another method, else 404. */
export function routeRequest(
  method: string | undefined,
  url: string | undefined,
): { status: 200 | 404 | 405; allow?: string } {
  const path = (url ?? '').split('?')[0];
  if (path !== '/metrics') return { status: 404 };
  if (method !== 'GET' && method !== 'HEAD') return { status: 405, allow: 'GET, HEAD' };
  return { status: 200 };
}

/** A listening metrics endpoint. */
export interface MetricsServer {
  readonly address: ListenAddress;
  close(): Promise<void>;
}

/**
 * Serves `render()` on GET /metrics at `listen`; resolves once listening, rejects if it cannot bind.
 * Request bodies are never read; every response closes its connection.
 */
export function startMetricsServer(
  listen: ListenAddress,
  render: () => string,
  limits: MetricsServerLimits = DEFAULT_METRICS_LIMITS,
): Promise<MetricsServer> {
  const server: Server = createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      maxHeaderSize: 8192,
      // Node checks the header and request timeouts this often (default 30 s: a slowloris would win).
      connectionsCheckingInterval: Math.max(
        100,
        Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4,
      ),
    },
    (request: IncomingMessage, response: ServerResponse) => {
      const route = routeRequest(request.method, request.url);
      response.setHeader('Connection', 'close');
      if (route.status !== 200) {
        if (route.allow) response.setHeader('Allow', route.allow);
        response.writeHead(route.status, { 'Content-Type': 'text/plain; charset=utf-8' });
        response.end(route.status === 404 ? 'not found: only GET /metrics\n' : 'method not allowed\n');
        return;
      }
      const body = render();
      response.writeHead(200, { 'Content-Type': CONTENT_TYPE, 'Content-Length': Buffer.byteLength(body) });
      response.end(request.method === 'HEAD' ? undefined : body);
    },
  );
  server.maxConnections = limits.maxConnections;
  // A connection that goes quiet is dropped after the request timeout, and any after its lifetime.
  server.on('connection', (socket) => {
    socket.setTimeout(limits.requestTimeoutMs, () => socket.destroy());
    const lifetime = setTimeout(() => socket.destroy(), limits.lifetimeMs);
    lifetime.unref();
    socket.once('close', () => clearTimeout(lifetime));
  });
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
    else socket.destroy();
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      const bound = server.address();
      const port = typeof bound === 'object' && bound !== null ? bound.port : listen.port;
      resolve({
        address: { host: listen.host, port },
        close: () =>
          new Promise<void>((done) => {
            server.closeAllConnections();
            server.close(() => done());
          }),
      });
    });
  });
}
