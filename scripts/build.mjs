// Bundles src/cli/main.ts into one executable file, dist/moshwall.js, for Node.js 18 or newer.
import { chmodSync } from 'node:fs';
import { build } from 'esbuild';

const outfile = 'dist/moshwall.js';
await build({
  entryPoints: ['src/cli/main.ts'],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node18',
  format: 'esm',
  banner: { js: '#!/usr/bin/env node' },
  legalComments: 'inline',
  logLevel: 'warning',
});
chmodSync(outfile, 0o755);
