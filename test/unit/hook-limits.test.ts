import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { limitOptions, parseLimits } from '../../src/hook.ts';

/** A /proc/PID/limits text with the rows the watcher cares about. */
const limits = (rows: Record<string, [string, string]>) =>
  [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    ...Object.entries(rows).map(
      ([name, [soft, hard]]) => `${name.padEnd(26)}${soft.padEnd(21)}${hard.padEnd(21)}seconds   `,
    ),
  ].join('\n');

const generous = {
  'Max cpu time': ['unlimited', 'unlimited'],
  'Max file size': ['unlimited', 'unlimited'],
  'Max data size': ['unlimited', 'unlimited'],
  'Max open files': ['20000', '20000'],
  'Max address space': ['unlimited', 'unlimited'],
} as Record<string, [string, string]>;

describe("the hook watcher's limits", () => {
  it('parses /proc/PID/limits', () => {
    const parsed = parseLimits(limits({ ...generous, 'Max open files': ['64', '4096'] }));
    assert.deepEqual(parsed.get('Max open files'), { soft: 64, hard: 4096 });
    assert.deepEqual(parsed.get('Max cpu time'), {
      soft: Number.POSITIVE_INFINITY,
      hard: Number.POSITIVE_INFINITY,
    });
  });

  it('changes nothing where every limit suffices', () => {
    assert.deepEqual(limitOptions(parseLimits(limits(generous)), true), []);
  });

  it('raises soft limits a user lowered, and hard ones where root may', () => {
    const lowered = parseLimits(
      limits({ ...generous, 'Max cpu time': ['3', 'unlimited'], 'Max open files': ['64', '64'] }),
    );
    assert.deepEqual(limitOptions(lowered, true), ['--cpu=unlimited:', '--nofile=4096:4096']);
    // Without CAP_SYS_RESOURCE a hard limit stays; the soft one goes up to it.
    assert.deepEqual(limitOptions(lowered, false), ['--cpu=unlimited:']);
    const halfway = parseLimits(limits({ ...generous, 'Max open files': ['64', '1024'] }));
    assert.deepEqual(limitOptions(halfway, false), ['--nofile=1024:']);
  });
});
