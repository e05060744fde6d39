// Twenty `moshwall sync` processes at once (as twenty logins or timers might start them) serialize on
// moshwall's lock: every one succeeds, each rule is made (and later removed) by exactly one of them,
// and ufw ends with exactly one rule per port and family.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import {
  expectedOurs,
  ourTuples,
  parseOk,
  rulesFiles,
  type SpecJson,
  type SyncJson,
  sortTuples,
  spec,
  specKeys,
  useLab,
} from './_moshwall.ts';
import { createLab, labSkipReason, type MoshServer, PID_KINDS, type UfwTuple } from './lab.ts';

const RUNS = 20;

/** How many times each tuple appears (any count above 1 is a duplicate rule). */
function counts(tuples: readonly UfwTuple[]): Map<string, number> {
  const seen = new Map<string, number>();
  for (const tuple of tuples) {
    const key = `${tuple.family} ${tuple.tuple} ${tuple.comment}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  return seen;
}

for (const pids of PID_KINDS) {
  describe(`ufw: concurrent syncs (${pids.name})`, { skip: labSkipReason() }, () => {
    let baseline: UfwTuple[] = [];
    let servers: MoshServer[] = [];
    const wanted: SpecJson[] = [spec(60201, 'v4'), spec(60202, 'v6'), spec(60203, 'v4'), spec(60203, 'v6')];

    const theLab = useLab(() => createLab(pids.options));
    /** RUNS syncs started together; each must exit 0 with nothing on stderr. */
    const syncAtOnce = async (): Promise<SyncJson[]> => {
      const results = await Promise.all(
        Array.from({ length: RUNS }, () => theLab().moshwall(['sync', '--json'], { timeoutMs: 120_000 })),
      );
      return results.map((result, index) => parseOk<SyncJson>(result, `concurrent sync #${index + 1}`));
    };

    before(async () => {
      baseline = await theLab().ufwTuples();
    });

    test(`${RUNS} syncs at once with 3 live sessions open each rule exactly once`, async () => {
      servers = [
        await theLab().startMoshServer('alice', { port: 60201 }),
        await theLab().startMoshServer('bob', { port: 60202, family: 'v6' }),
        await theLab().startMoshServer('alice', { port: 60203, via: 'local', address: '::' }),
      ];
      assert.deepEqual(ourTuples(await theLab().ufwTuples()), [], 'nothing of ours is open yet');

      const reports = await syncAtOnce();
      // Under the lock, the first run opens everything and every later one finds it done.
      assert.deepEqual(specKeys(reports.flatMap((report) => report.opened)), specKeys(wanted));
      assert.equal(reports.filter((report) => report.opened.length > 0).length, 1);
      assert.deepEqual(
        reports.flatMap((report) => report.closed),
        [],
      );
      for (const report of reports) assert.equal(report.sessions.length, 3);

      const tuples = await theLab().ufwTuples();
      const duplicates = [...counts(tuples)].filter(([, count]) => count !== 1);
      assert.deepEqual(duplicates, [], 'no tuple appears twice');
      assert.equal(tuples.length, baseline.length + wanted.length);
      assert.deepEqual(
        ourTuples(tuples),
        expectedOurs([
          [60201, 'v4'],
          [60202, 'v6'],
          [60203, 'v4'],
          [60203, 'v6'],
        ]),
      );
      assert.equal(await theLab().udpReachable(60203, 'v6'), true);
    });

    test('one more sync finds nothing to change', async () => {
      const before = rulesFiles(theLab());
      const result = await theLab().moshwall(['sync']);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.match(result.stdout, /^3 session\(s\), 4 rule\(s\) kept, nothing to change$/m);
      assert.equal(rulesFiles(theLab()), before);
    });

    test(`${RUNS} syncs at once after the sessions ended close each rule exactly once`, async () => {
      for (const server of servers) await theLab().killServerProcess(server.pid);
      const reports = await syncAtOnce();
      assert.deepEqual(specKeys(reports.flatMap((report) => report.closed)), specKeys(wanted));
      assert.equal(reports.filter((report) => report.closed.length > 0).length, 1);
      assert.deepEqual(
        reports.flatMap((report) => report.opened),
        [],
      );
      assert.deepEqual(sortTuples(await theLab().ufwTuples()), sortTuples(baseline));
    });
  });
}
