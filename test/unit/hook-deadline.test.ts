import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { deadlineFile, readDeadline, writeDeadline } from '../../src/hook-deadline.ts';

const dir = mkdtempSync(join(tmpdir(), 'moshwall-deadline-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('the deadline round-trips beside the lock, 0600, leaving no temporary file', () => {
  const lock = join(dir, 'moshwall.lock');
  assert.equal(readDeadline(lock), 0, 'none yet');
  writeDeadline(lock, 1_700_000_000_123);
  assert.equal(readDeadline(lock), 1_700_000_000_123);
  assert.equal(deadlineFile(lock), join(dir, 'hook-deadline'));
  assert.equal(statSync(deadlineFile(lock)).mode & 0o777, 0o600);
  for (let round = 0; round < 20; round += 1) writeDeadline(lock, round);
  assert.deepEqual(readdirSync(dir), ['hook-deadline']);
  writeFileSync(deadlineFile(lock), 'garbage\n');
  assert.equal(readDeadline(lock), 0, 'an unreadable value is no deadline');
});
