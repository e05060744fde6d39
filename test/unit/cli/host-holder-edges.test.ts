import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { after, test } from 'node:test';
import { hostHolderEdges, statusFileBudget } from '../../../src/cli/host-daemon.ts';
import { createHostProcReader } from '../../../src/discovery/proc-reader.ts';

// The holder watch's edges over this machine's own /proc, on child processes this test starts (and
// ends, by pid).

const started: ChildProcess[] = [];
after(() => {
  for (const child of started)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
});

/** Starts a child and resolves once it printed its first line. */
async function startChild(argv: string[]): Promise<ChildProcess & { pid: number }> {
  const child = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  started.push(child);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`${argv.join(' ')} exited ${code}`)));
  });
  return child as ChildProcess & { pid: number };
}

/** Ends a child and waits until it is reaped. */
async function end(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/** How many of this process's fds point at /proc/PID/status. */
function statusFilesOpen(pid: number): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === `/proc/${pid}/status`;
    } catch {
      return false;
    }
  }).length;
}

const uid = process.getuid?.() ?? 0;

test("a holder's status is read from a file kept open; once it ends it reads as gone, and watching() closes the others", async () => {
  const edges = hostHolderEdges(createHostProcReader());
  const child = await startChild([process.execPath, '-e', 'console.log("up"); setInterval(() => {}, 1000)']);
  assert.deepEqual(edges.status(child.pid), { tracerPid: 0, realUid: uid, effectiveUid: uid });
  assert.deepEqual(edges.status(child.pid), { tracerPid: 0, realUid: uid, effectiveUid: uid });
  assert.equal(statusFilesOpen(child.pid), 1, 'one file, opened once and read again');
  edges.watching?.(new Set());
  assert.equal(statusFilesOpen(child.pid), 0, 'closed once no longer watched');
  edges.status(child.pid);
  assert.equal(statusFilesOpen(child.pid), 1);
  await end(child);
  assert.equal(edges.status(child.pid), undefined, 'gone');
  assert.equal(statusFilesOpen(child.pid), 0, 'and its file closed');
});

test("the sharer look finds an owner's process holding a watched socket, skips the known holders and other users' processes", async () => {
  const edges = hostHolderEdges(createHostProcReader());
  const holder = await startChild([
    process.execPath,
    '-e',
    'const s = require("node:dgram").createSocket("udp4"); s.bind(0, "127.0.0.1", () => console.log("bound"))',
  ]);
  const inode = readdirSync(`/proc/${holder.pid}/fd`)
    .map((fd) => /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${holder.pid}/fd/${fd}`))?.[1])
    .map(Number)
    .find((value) => Number.isInteger(value) && value > 0);
  assert.ok(inode !== undefined, 'the child holds a socket');
  const inodes = new Set([inode]);
  const sharer = edges.sharer;
  assert.ok(sharer !== undefined);
  assert.deepEqual(sharer(inodes, new Set([uid]), new Set()), { pid: holder.pid, inode });
  assert.equal(sharer(inodes, new Set([uid]), new Set([holder.pid])), undefined, 'a known holder');
  assert.equal(sharer(inodes, new Set([uid + 4242]), new Set()), undefined, "not the owners' process");
  await end(holder);
});

test('the status files kept open stay within a quarter of the open-file limit, 4096 at most', () => {
  const line = (soft: string) =>
    `Limit                     Soft Limit           Hard Limit           Units     \nMax open files            ${soft}                524288               files     \n`;
  assert.equal(statusFileBudget(line('1024')), 256);
  assert.equal(statusFileBudget(line('100000')), 4096);
  assert.equal(statusFileBudget(line('unlimited')), 4096);
  assert.equal(statusFileBudget('Max open files: many'), 64);
  assert.equal(statusFileBudget(undefined), 64);
  const own = readFileSync('/proc/self/limits', 'utf8');
  const soft = Number(/^Max open files\s+(\d+)/m.exec(own)?.[1]);
  assert.equal(statusFileBudget(own), Math.min(4096, Math.floor(soft / 4)));
});
