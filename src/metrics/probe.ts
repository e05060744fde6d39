import { request } from 'node:http';
import type { ListenAddress } from './listen.ts';

/** What a look at the metrics endpoint found: whether moshwall's metrics answer there, and if not why. */
export interface MetricsProbe {
  listening: boolean;
  detail: string;
}

/** GET /metrics at `listen` within timeoutMs: listening when it answers 200 with moshwall_build_info. */
export function probeMetrics(listen: ListenAddress, timeoutMs = 2000): Promise<MetricsProbe> {
  return new Promise((resolve) => {
    const req = request(
      { host: listen.host, port: listen.port, path: '/metrics', method: 'GET', timeout: timeoutMs },
      (response) => {
        let body = '';
        response.setEncoding('utf8');
        response.on('data', (chunk: string) => {
          if (body.length < 1_000_000) body += chunk;
        });
        response.on('end', () => {
          if (response.statusCode === 200 && body.includes('moshwall_build_info'))
            resolve({ listening: true, detail: 'answers GET /metrics' });
          else
            resolve({
              listening: false,
              detail: `answered ${response.statusCode} without moshwall's metrics`,
            });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ listening: false, detail: error.code ?? error.message }),
    );
    req.end();
  });
}
