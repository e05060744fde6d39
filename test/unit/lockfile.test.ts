import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import {
  chmodSync,
  closeSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { DEFAULT_CONFIG } from '../../src/config.ts';
import { withLock } from '../../src/engine.ts';
import { LockError } from '../../src/errors.ts';
import {
  describeHolders,
  findLockHolders,
  holdLock,
  lockDirectoryProblem,
  lockFileProblem,
  openLockFile,
  uidFromStatus,
} from '../../src/lockfile.ts';

const file = { isFile: true, uid: 0, mode: 0o100600, nlink: 1 };
const dir = { isFile: false, isDirectory: true, uid: 0, mode: 0o40700, nlink: 2 };

describe('lockFileProblem', () => {
  const cases: Array<[string, typeof file, string | undefined]> = [
    ['0600, root, one link', file, undefined],
    ['0644 (what flock(1) made)', { ...file, mode: 0o100644 }, 'has mode 644, not 600'],
    ['0640', { ...file, mode: 0o100640 }, 'has mode 640, not 600'],
    ["a user's", { ...file, uid: 61001 }, 'is owned by uid 61001, not 0'],
    ['hard-linked elsewhere', { ...file, nlink: 2 }, 'has 2 hard links'],
    ['not a file', { ...file, isFile: false }, 'is not a regular file'],
  ];
  for (const [name, facts, expected] of cases) {
    it(`judges ${name}`, () => assert.equal(lockFileProblem(facts, 0), expected));
  }
});

describe('lockDirectoryProblem', () => {
  it('accepts a 0700 or 0755 directory of root, refuses a writable or foreign one', () => {
    assert.equal(lockDirectoryProblem(dir, 0), undefined);
    assert.equal(lockDirectoryProblem({ ...dir, mode: 0o40755 }, 0), undefined);
    assert.equal(lockDirectoryProblem({ ...dir, mode: 0o40777 }, 0), 'is writable by group');
    assert.equal(lockDirectoryProblem({ ...dir, mode: 0o41703 }, 0), 'is writable by others');
    assert.equal(lockDirectoryProblem({ ...dir, uid: 5 }, 0), 'is owned by uid 5, not 0');
    assert.equal(lockDirectoryProblem({ ...dir, isDirectory: false }, 0), 'is not a directory');
  });
});

describe('uidFromStatus and describeHolders', () => {
  it('reads the real uid and names each holder', () => {
    assert.equal(uidFromStatus('Name:\tcat\nUid:\t61001\t61001\t61001\t61001\n'), 61001);
    assert.equal(uidFromStatus('Name:\tcat\n'), undefined);
    assert.equal(describeHolders([]), undefined);
    assert.equal(
      describeHolders([
        { pid: 12, uid: 61001, command: 'python3' },
        { pid: 13, uid: undefined, command: '?' },
      ]),
      'pid 12 (python3, uid 61001), pid 13 (?, uid ?)',
    );
  });
});

describe('openLockFile and holdLock (real files in a temporary directory)', () => {
  const root = mkdtempSync(join(tmpdir(), 'moshwall-lock-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const uid = process.geteuid?.() ?? 0;

  it('makes the directory 0700 and the file 0600', () => {
    const lock = join(root, 'a', 'lock.d', 'lock');
    closeSync(openLockFile(lock, uid));
    assert.equal(lstatSync(join(root, 'a', 'lock.d')).mode & 0o7777, 0o700);
    assert.equal(lstatSync(lock).mode & 0o7777, 0o600);
  });

  it('replaces a 0644 lock file: a holder of the old file no longer holds the lock', async () => {
    mkdirSync(join(root, 'b'), { mode: 0o700 });
    const lock = join(root, 'b', 'lock');
    writeFileSync(lock, '', { mode: 0o644 });
    chmodSync(lock, 0o644);
    const fd = openSync(lock, 'r');
    const squatter = spawn('sh', ['-c', 'flock --exclusive 3 && exec sleep 30'], {
      stdio: ['ignore', 'ignore', 'ignore', fd],
    });
    closeSync(fd);
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      const release = await holdLock(lock, 0);
      assert.ok(release, 'the lock is ours although the old file is flocked');
      assert.equal(lstatSync(lock).mode & 0o7777, 0o600);
      await release();
    } finally {
      squatter.kill('SIGKILL');
    }
  });

  it('refuses to follow a symlink, and a directory others can write', () => {
    mkdirSync(join(root, 'c'), { mode: 0o700 });
    writeFileSync(join(root, 'c', 'target'), '', { mode: 0o600 });
    symlinkSync(join(root, 'c', 'target'), join(root, 'c', 'lock'));
    assert.throws(() => openLockFile(join(root, 'c', 'lock'), uid), LockError);
    mkdirSync(join(root, 'd'));
    chmodSync(join(root, 'd'), 0o777);
    assert.throws(() => openLockFile(join(root, 'd', 'lock'), uid), /writable by group; refusing/);
  });

  it('a second holder waits, then gets undefined; after release it gets the lock', async () => {
    const lock = join(root, 'e', 'lock');
    const first = await holdLock(lock, 1000);
    assert.ok(first);
    const began = performance.now();
    assert.equal(await holdLock(lock, 300), undefined);
    assert.ok(performance.now() - began >= 250, 'it waited');
    assert.equal(await holdLock(lock, 0), undefined, 'without waiting');
    await first();
    const second = await holdLock(lock, 0);
    assert.ok(second);
    await second();
  });

  it('names the process holding the lock file when a run gives up', async () => {
    const lock = join(root, 'f', 'lock');
    closeSync(openLockFile(lock, uid));
    const fd = openSync(lock, 'r');
    const holder = spawn('sh', ['-c', 'flock --exclusive 3 && exec sleep 30'], {
      stdio: ['ignore', 'ignore', 'ignore', fd],
    });
    closeSync(fd);
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.deepEqual(
        findLockHolders(lock).map((found) => found.pid),
        [holder.pid],
      );
      const config = { ...DEFAULT_CONFIG, lockFile: lock, lockTimeoutMs: 200 };
      await assert.rejects(
        withLock(
          { config, lock: holdLock, lockHolder: (path) => describeHolders(findLockHolders(path)) },
          async () => 'ran',
        ),
        (error: unknown) =>
          error instanceof LockError &&
          error.message.includes(`held ${lock} for more than 200 ms: pid ${holder.pid} (sleep, uid ${uid})`),
      );
    } finally {
      holder.kill('SIGKILL');
    }
  });
});
