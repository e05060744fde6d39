import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createScheduler } from '../../../src/daemon/scheduler.ts';
import type { SyncReport } from '../../../src/engine.ts';

/** A fake report numbered by run, so tests can tell which run served a request. */
const report = (run: number) => ({ run }) as unknown as SyncReport;

describe('createScheduler', () => {
  it('runs one at a time and serves every request with a run that started after it', async () => {
    const releases: (() => void)[] = [];
    let runs = 0;
    let concurrent = 0;
    let maxConcurrent = 0;
    const scheduler = createScheduler(async (onAllowed) => {
      const run = ++runs;
      concurrent++;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      await new Promise<void>((resolve) => releases.push(resolve));
      onAllowed(report(run));
      concurrent--;
      return report(run);
    });
    const first = scheduler.request();
    await Promise.resolve();
    const second = scheduler.request();
    const third = scheduler.request();
    releases.shift()?.();
    assert.deepEqual(await first, report(1));
    await new Promise((resolve) => setImmediate(resolve));
    releases.shift()?.();
    assert.deepEqual(await second, report(2), 'a request during run 1 is served by run 2');
    assert.deepEqual(await third, report(2), 'requests queued together share one run');
    await scheduler.idle();
    assert.equal(runs, 2);
    assert.equal(maxConcurrent, 1);
  });

  it('answers at onAllowed, before the run ends', async () => {
    let finish: () => void = () => {};
    const scheduler = createScheduler(async (onAllowed) => {
      onAllowed(report(1));
      await new Promise<void>((resolve) => {
        finish = resolve;
      });
      return report(1);
    });
    assert.deepEqual(await scheduler.request(), report(1));
    finish();
    await scheduler.idle();
  });

  it('rejects the waiters of a failed run and keeps working', async () => {
    let fail = true;
    const scheduler = createScheduler(async () => {
      if (fail) throw new Error('ufw exploded');
      return report(2);
    });
    await assert.rejects(scheduler.request(), /ufw exploded/);
    fail = false;
    assert.deepEqual(await scheduler.request(), report(2));
  });

  it('lets a request the running run covers join it, before or after its allows, and no other', async () => {
    let finish: () => void = () => {};
    let allow: () => void = () => {};
    let runs = 0;
    const scheduler = createScheduler(async (onAllowed) => {
      const run = ++runs;
      await new Promise<void>((resolve) => {
        allow = resolve;
      });
      onAllowed(report(run));
      await new Promise<void>((resolve) => {
        finish = resolve;
      });
      return report(run);
    });
    const first = scheduler.request();
    await Promise.resolve();
    const joinedEarly = scheduler.request(() => true);
    const notCovered = scheduler.request(() => false);
    allow();
    assert.deepEqual(await first, report(1));
    assert.deepEqual(await joinedEarly, report(1), 'joined before the allows: answered with them');
    assert.deepEqual(await scheduler.request(() => true), report(1), 'joined after the allows: their report');
    finish();
    await new Promise((resolve) => setImmediate(resolve));
    allow();
    assert.deepEqual(await notCovered, report(2), 'not covered: the next run');
    finish();
    await scheduler.idle();
    assert.equal(runs, 2);
  });
});
