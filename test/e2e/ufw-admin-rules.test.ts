// An admin's rules in the mosh range survive every open/close cycle byte for byte: moshwall never adopts
// one (ufw would rewrite its comment), never deletes one, never turns a deny into an allow, and opens
// nothing for a port an admin rule already allows.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import {
  expectedOurs,
  ourTuples,
  spec,
  specKeys,
  statusJson,
  syncJson,
  tuplePort,
  useAdminRules,
  useLab,
} from './_moshwall.ts';
import { createLab, labSkipReason, type MoshServer, PID_KINDS } from './lab.ts';

/** The admin's rules, added before any session, as argv after `ufw`. */
const ADMIN_RULES = [
  ['allow', '60010/udp'],
  ['allow', 'proto', 'udp', 'to', 'any', 'port', '60011', 'comment', 'admin note'],
  // The very words moshwall uses, minus its comment: `ufw allow` of ours would adopt this rule.
  ['allow', 'proto', 'udp', 'to', 'any', 'port', '60012'],
  ['deny', 'proto', 'udp', 'to', 'any', 'port', '60014'],
];
const COVERED = [60010, 60011, 60012];
const OPENED = 60013;
const DENIED = 60014;
const PORTS = [...COVERED, OPENED, DENIED];

for (const pids of PID_KINDS) {
  describe(`ufw: admin rules in the range survive every open/close cycle (${pids.name})`, {
    skip: labSkipReason(),
  }, () => {
    const theLab = useLab(() => createLab(pids.options));
    /** Every rule block not ours, byte for byte, right after the admin added theirs; and the check on it. */
    const admin = useAdminRules(theLab, ADMIN_RULES);
    const assertAdminUntouched = admin.assertUntouched;

    before(() => {
      assert.match(
        admin.blocks().join('\n'),
        /deny udp 60014 0\.0\.0\.0\/0 any 0\.0\.0\.0\/0 in\n-A ufw-user-input .* -j DROP/,
      );
    });

    for (const cycle of [1, 2]) {
      test(`cycle ${cycle}: sessions on 60010-60014 open only 60013, and closing it leaves every admin rule`, async () => {
        const servers: MoshServer[] = [];
        try {
          await runCycle(servers);
        } finally {
          // Whatever failed, the next cycle needs these ports free.
          for (const server of servers) await theLab().killServerProcess(server.pid);
        }
      });
    }

    /** One cycle: start a session on each port, sync, check, kill them all, sync, check. */
    async function runCycle(servers: MoshServer[]): Promise<void> {
      for (const port of PORTS) {
        servers.push(await theLab().startMoshServer(port % 2 === 0 ? 'alice' : 'bob', { port }));
      }
      assert.deepEqual(
        servers.map((server) => server.port),
        PORTS,
      );

      const opened = await syncJson(theLab());
      assertAdminUntouched('by the sync that opened');
      assert.deepEqual(specKeys(opened.opened), specKeys([spec(OPENED, 'v4')]));
      assert.deepEqual(opened.closed, []);
      assert.deepEqual(opened.deferred.map((entry) => [entry.port, entry.family, entry.kind]).sort(), [
        [60010, 'v4', 'covered'],
        [60011, 'v4', 'covered'],
        [60012, 'v4', 'covered'],
        [60014, 'v4', 'conflict'],
      ]);
      const tuples = await theLab().ufwTuples();
      assert.deepEqual(ourTuples(tuples), expectedOurs([[OPENED, 'v4']]));
      for (const port of [...COVERED, DENIED]) {
        assert.deepEqual(
          tuples.filter((tuple) => tuplePort(tuple) === String(port) && tuple.comment === 'moshwall'),
          [],
          `no rule of ours for ${port}`,
        );
      }
      // The deny is still a deny, for both families, and still without a comment.
      assert.deepEqual(
        tuples.filter((tuple) => tuplePort(tuple) === String(DENIED)),
        [
          { family: 'v4', tuple: 'deny udp 60014 0.0.0.0/0 any 0.0.0.0/0 in', comment: '' },
          { family: 'v6', tuple: 'deny udp 60014 ::/0 any ::/0 in', comment: '' },
        ],
      );

      const status = await statusJson(theLab());
      assert.deepEqual(
        status.sessions.map((session) => [session.port, session.rule]),
        [
          [60010, 'covered'],
          [60011, 'covered'],
          [60012, 'covered'],
          [60013, 'open'],
          [60014, 'conflict'],
        ],
      );
      assert.equal(await theLab().udpReachable(OPENED, 'v4'), true, 'our rule lets 60013 in');
      assert.equal(await theLab().udpReachable(60012, 'v4'), true, "the admin's rule lets 60012 in");
      assert.equal(await theLab().udpReachable(DENIED, 'v4'), false, 'the deny still drops 60014');

      const again = await syncJson(theLab());
      assert.deepEqual([again.opened, again.closed], [[], []]);
      assertAdminUntouched('by a sync with nothing to do');

      for (const server of servers) await theLab().killServerProcess(server.pid);
      const closed = await syncJson(theLab());
      assertAdminUntouched('by the sync that closed');
      assert.deepEqual(specKeys(closed.closed), specKeys([spec(OPENED, 'v4')]));
      assert.deepEqual(closed.opened, []);
      assert.deepEqual(ourTuples(await theLab().ufwTuples()), []);
      assert.equal(await theLab().udpReachable(OPENED, 'v4'), false, '60013 is closed again');
      assert.equal(await theLab().udpReachable(60010, 'v4'), true, "the admin's 60010 is still open");
    }
  });
}
