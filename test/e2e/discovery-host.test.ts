// moshwall on the machine's own process table (the lab's pidNamespace: false), as systemd runs it: every
// process of this host is walked, including ones root may not read (here PID 1 lets root list
// /proc/1/fd but refuses readlink of its entries). Issue 9: one such process failed every reconcile.
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { UninspectedProcess } from '../../src/model.ts';
import { parseOk, type StatusJson, spec, specKeys, statusJson, syncJson, useLab } from './_moshwall.ts';
import { createLab, labSkipReason } from './lab.ts';

/** The errno of reading host PID 1's first fd link as root here ('' when it reads). */
function pid1FdError(): string {
  try {
    const [first] = readdirSync('/proc/1/fd');
    if (first !== undefined) readlinkSync(`/proc/1/fd/${first}`);
    return '';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
}

describe('discovery on the host process table (issue 9)', { skip: labSkipReason() }, () => {
  const theLab = useLab(() => createLab({ pidNamespace: false }));

  test('a session opens and closes though PID 1 cannot be read; status and doctor name PID 1', async () => {
    const user = theLab().users[0]?.name ?? 'alice';
    const mosh = await theLab().startMoshServer(user, { port: 60555 });
    try {
      assert.equal(mosh.nsPid, mosh.pid, 'the lab shares the host pids');
      const report = await syncJson(theLab());
      assert.deepEqual(specKeys(report.opened), specKeys([spec(60555, 'v4')]));
      assert.equal(await theLab().udpReachable(60555, 'v4'), true);
      const status = (await statusJson(theLab())) as StatusJson & { uninspected: UninspectedProcess[] };
      assert.deepEqual(
        status.sessions.map((session) => [session.pid, session.port, session.rule]),
        [[mosh.pid, 60555, 'open']],
      );
      const pid1 = status.uninspected.find((blind) => blind.pid === 1);
      const code = pid1FdError();
      if (code === '') {
        assert.equal(pid1, undefined, 'PID 1 reads here, so it is not listed');
      } else {
        assert.deepEqual(pid1 && [pid1.root, pid1.code, pid1.uids], [true, code, [0]], JSON.stringify(pid1));
        const text = await theLab().moshwall(['status']);
        assert.equal(text.exitCode, 0, text.stderr);
        assert.match(
          text.stdout,
          new RegExp(`pid 1 uid 0 exe .*: reading /proc/1/fd/\\d+ failed \\(${code}\\); root: ignored`),
        );
        const doctor = JSON.parse((await theLab().moshwall(['doctor', '--json'])).stdout) as {
          findings: { level: string; check: string; message: string }[];
        };
        const processes = doctor.findings.filter((finding) => finding.check === 'processes');
        assert.deepEqual(
          processes.map((finding) => finding.level),
          ['ok'],
          JSON.stringify(processes),
        );
        assert.match(processes[0]?.message ?? '', /ignored .*: pid 1\b/);
      }
    } finally {
      await theLab().killServerProcess(mosh.pid);
    }
    const closed = parseOk<{ closed: unknown[] }>(await theLab().moshwall(['sync', '--json']), 'sync');
    assert.deepEqual(closed.closed, [spec(60555, 'v4')]);
  });
});
