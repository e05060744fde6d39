// The loop of bench/conntrack.ts, run as root inside the lab's server host (its netns, where UFW makes the
// kernel track connections): per table size, fill the conntrack table with that many other UDP flows,
// then RUNS times make one flow to PORT and time moshwall's own delete of it (createFlowCleaner over the
// real runner: one `conntrack -D` process, its output parsed), checking it deleted exactly that flow.
// Prints JSON on stdout. Argv: <runs> <sizes, comma-separated>.
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createFlowCleaner } from '../src/conntrack.ts';
import { runCommand } from '../src/exec.ts';

const PORT = 60001;
/** The lab's client address: our datagrams to it are tracked on the way out (OUTPUT). */
const PEER = '192.0.2.2';
const [runsText = '50', sizesText = '0,1000,10000'] = process.argv.slice(2);
const RUNS = Number(runsText);
const SIZES = sizesText.split(',').map(Number);

/** The number of entries in this netns's conntrack table. */
function tableSize(): number {
  return readFileSync('/proc/net/nf_conntrack', 'utf8').split('\n').filter(Boolean).length;
}

/** Sends one datagram to PEER:port from `socket` and resolves once it has left. */
function send(socket: dgram.Socket, port: number): Promise<void> {
  return new Promise((resolve, reject) =>
    socket.send('x', port, PEER, (error) => (error ? reject(error) : resolve())),
  );
}

/** A bound UDP socket. */
async function openSocket(): Promise<dgram.Socket> {
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, resolve));
  return socket;
}

const cleaner = createFlowCleaner(runCommand, 15_000);
const spec = { port: PORT, family: 'v4' as const, source: '0.0.0.0/0' };
// A flush of BATCH rules (daemon on_stop = "flush", uninstall): one forget of BATCH specs, one flow each.
const BATCH = 100;
const batchMs: number[] = [];
const batchTable = tableSize();
for (let run = 0; run < 5; run += 1) {
  const socket = await openSocket();
  const specs = Array.from({ length: BATCH }, (_, index) => ({ ...spec, port: PORT + index }));
  for (const each of specs) await send(socket, each.port);
  const startedAt = performance.now();
  const outcomes = await cleaner.forget(specs);
  batchMs.push(performance.now() - startedAt);
  socket.close();
  const deleted = outcomes.reduce((sum, outcome) => sum + (outcome.ok ? outcome.deleted : 0), 0);
  if (deleted !== BATCH) throw new Error(`batch: expected ${BATCH} flows deleted, got ${deleted}`);
}
const filler = await openSocket();
const results = [];
for (const size of SIZES) {
  // `size` other flows: one socket to as many destination ports (1024 + i, never PORT).
  for (let index = 0; index < size; index += 1) await send(filler, 1024 + (index % 50_000));
  const entries = tableSize();
  const runnerMs: number[] = [];
  const wallMs: number[] = [];
  let deletedTotal = 0;
  for (let run = 0; run < RUNS; run += 1) {
    const socket = await openSocket();
    await send(socket, PORT);
    const startedAt = performance.now();
    const [outcome] = await cleaner.forget([spec]);
    wallMs.push(performance.now() - startedAt);
    socket.close();
    if (!outcome?.ok) throw new Error(`delete failed: ${JSON.stringify(outcome)}`);
    if (outcome.deleted !== 1) throw new Error(`expected 1 flow deleted, got ${outcome.deleted}`);
    deletedTotal += outcome.deleted;
    runnerMs.push(outcome.durationMs);
  }
  results.push({ size, entries, runs: RUNS, deletedTotal, runnerMs, wallMs, version: await cleaner.probe() });
}
filler.close();
const floor: number[] = [];
for (let run = 0; run < RUNS; run += 1)
  floor.push((await runCommand(['conntrack', '--version'], { timeoutMs: 15_000 })).durationMs);
process.stdout.write(
  `${JSON.stringify({ results, versionSpawnMs: floor, batch: BATCH, batchMs, batchTable })}\n`,
);
