import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { overShare } from '../../../src/daemon/slots.ts';

test('the newest connections of a uid beyond its share are the ones closed; others and unknowns stay', () => {
  const holders = [
    ...Array.from({ length: 10 }, (_, index) => ({ id: index, uid: 1001 })),
    { id: 10, uid: 1002 },
    { id: 11, uid: undefined },
    { id: 12, uid: 1001 },
  ];
  assert.deepEqual(overShare(holders, 8), [8, 9, 12]);
  assert.deepEqual(overShare(holders.slice(0, 8), 8), []);
});

test('property: after closing the excess no uid holds more than its share, and nothing else is closed', () => {
  fc.assert(
    fc.property(
      fc.array(fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }), { maxLength: 60 }),
      fc.integer({ min: 1, max: 10 }),
      (uids, share) => {
        const holders = uids.map((uid, id) => ({ id, uid }));
        const closed = new Set(overShare(holders, share));
        const kept = holders.filter((holder) => !closed.has(holder.id));
        const counts = new Map<number, number>();
        for (const holder of kept) {
          if (holder.uid !== undefined) counts.set(holder.uid, (counts.get(holder.uid) ?? 0) + 1);
        }
        for (const count of counts.values()) assert.ok(count <= share);
        for (const holder of holders.filter((each) => closed.has(each.id))) {
          assert.notEqual(holder.uid, undefined);
          assert.equal(counts.get(holder.uid as number), share, 'only a uid at its full share loses one');
        }
      },
    ),
  );
});
