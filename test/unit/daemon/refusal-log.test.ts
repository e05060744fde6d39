import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRefusalLog } from '../../../src/daemon/refusal-log.ts';
import type { RefusedHolder } from '../../../src/model.ts';

const holder = (pid: number, uid = 1001, reason = 'exe is not the mosh-server binary'): RefusedHolder => ({
  pid,
  uid,
  user: uid === 1001 ? 'alice' : 'bob',
  port: 60000 + (pid % 1000),
  family: 'v4',
  localAddress: '0.0.0.0',
  exe: '/usr/bin/python3',
  reason,
});

const limits = { linesPerWindow: 3, windowMs: 60_000, maxReasonChars: 20 };

test('a refusal is said once while it lasts, and again if it comes back after it was gone', () => {
  const log = createRefusalLog(limits);
  assert.equal(log([holder(1)], 0).length, 1);
  assert.equal(log([holder(1)], 100).length, 0);
  assert.equal(log([], 200).length, 0);
  assert.equal(log([holder(1)], 300).length, 1);
});

test("one user's flood: at most linesPerWindow lines, then one sum; another user is still heard", () => {
  const log = createRefusalLog(limits);
  const flood = Array.from({ length: 50 }, (_, index) => holder(index + 1));
  const first = log([...flood, holder(999, 1002)], 0);
  assert.equal(first.filter((line) => line.event === 'refused' && line.fields.user === 'alice').length, 3);
  assert.equal(first.filter((line) => line.event === 'refused' && line.fields.user === 'bob').length, 1);
  assert.equal(log(flood, 1000).length, 0, 'held-back refusals count, silently, inside the window');
  const later = log([], 61_000);
  assert.deepEqual(later, [
    { event: 'refusals-suppressed', fields: { user: 'alice', uid: 1001, count: 47, window_s: 60 } },
  ]);
});

test('the memory is pruned to current refusals, and long reasons are cut', () => {
  const log = createRefusalLog({ ...limits, linesPerWindow: 10_000 });
  for (let round = 0; round < 100; round += 1) {
    log(
      Array.from({ length: 20 }, (_, index) => holder(round * 20 + index + 1)),
      round,
    );
  }
  const lines = log([holder(5, 1001, 'x'.repeat(5000))], 200);
  assert.equal(lines.length, 1);
  assert.equal(lines[0]?.event === 'refused' && lines[0].fields.reason.length, 20);
});
