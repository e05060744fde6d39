import { basename } from 'node:path';
import { hostEdges } from './host.ts';
import { runMain } from './run.ts';

// The entry point: the only place that touches process.argv, process.exitCode and the real streams.
process.exitCode = await runMain({
  argv: process.argv.slice(2),
  invokedAs: basename(process.argv[1] ?? 'moshwall'),
  selfPath: process.argv[1] ?? '',
  env: process.env,
  uid: process.getuid?.() ?? -1,
  stdout: (text) => process.stdout.write(`${text}\n`),
  stderr: (text) => process.stderr.write(`${text}\n`),
  passThrough: (data) => new Promise((resolve) => process.stdout.write(data, () => resolve())),
  edges: hostEdges,
});
