// The admin's side of moshwall against a real UFW: flush takes away every rule of ours and nothing
// else, status shows a rule whose session ended as stale, doctor is content with the lab, a bad config
// file changes nothing (exit 3, naming file, line and key), and an inactive UFW makes sync a no-op.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  expectedOurs,
  ourTuples,
  parseOk,
  rulesFiles,
  spec,
  specKeys,
  started,
  statusJson,
  syncJson,
  useAdminRules,
  useLab,
} from './_moshwall.ts';
import { labSkipReason, type MoshServer } from './lab.ts';

/** Rules an admin keeps near and in the range; the last one carries our tag without our shape (tcp). */
const ADMIN_RULES = [
  ['allow', '60050/udp'],
  ['allow', 'proto', 'udp', 'to', 'any', 'port', '60051', 'comment', 'admin note'],
  ['deny', 'proto', 'udp', 'to', 'any', 'port', '60052'],
  ['allow', 'proto', 'tcp', 'to', 'any', 'port', '60053', 'comment', 'moshwall'],
];

interface DoctorJson {
  findings: Array<{ level: 'ok' | 'warn' | 'fail'; check: string; message: string }>;
}

describe('ufw: flush, stale rules, doctor, bad config, inactive firewall', { skip: labSkipReason() }, () => {
  const theLab = useLab();
  const assertAdminUntouched = useAdminRules(theLab, ADMIN_RULES).assertUntouched;
  /** alice over ssh (IPv4 only) on 60054; bob dual-stack on 60055. */
  let single: MoshServer | undefined;
  let dual: MoshServer | undefined;

  test('flush removes every rule of ours and no rule of the admin', async () => {
    single = await theLab().startMoshServer('alice', { port: 60054 });
    dual = await theLab().startMoshServer('bob', { port: 60055, via: 'local', address: '::' });
    const opened = await syncJson(theLab());
    const ours = [spec(60054, 'v4'), spec(60055, 'v4'), spec(60055, 'v6')];
    assert.deepEqual(specKeys(opened.opened), specKeys(ours));
    assert.equal(await theLab().udpReachable(60054, 'v4'), true);

    const flushed = parseOk<{ closed: typeof ours }>(
      await theLab().moshwall(['flush', '--json']),
      'flush --json',
    );
    assert.deepEqual(specKeys(flushed.closed), specKeys(ours));
    assert.deepEqual(ourTuples(await theLab().ufwTuples()), []);
    assertAdminUntouched('by flush');
    // The tcp rule tagged "moshwall" by the admin is not ours: still there.
    assert.ok(
      (await theLab().ufwTuples()).some(
        (tuple) =>
          tuple.tuple === 'allow tcp 60053 0.0.0.0/0 any 0.0.0.0/0 in' && tuple.comment === 'moshwall',
      ),
    );
    assert.equal(await theLab().udpReachable(60054, 'v4'), false, 'flushed port is closed');
    // The sessions live on: their rules are missing until the next sync.
    const status = await statusJson(theLab());
    assert.deepEqual(
      status.sessions.map((session) => [session.port, session.rule]),
      [
        [60054, 'missing'],
        [60055, 'missing'],
      ],
    );
    assert.deepEqual(status.rules, []);

    const again = parseOk<{ closed: unknown[] }>(await theLab().moshwall(['flush', '--json']), 'flush');
    assert.deepEqual(again.closed, [], 'a second flush has nothing to remove');
  });

  test('a rule whose session was killed without a sync shows as stale; the next sync removes it', async () => {
    const reopened = await syncJson(theLab());
    assert.deepEqual(
      specKeys(reopened.opened),
      specKeys([spec(60054, 'v4'), spec(60055, 'v4'), spec(60055, 'v6')]),
    );
    await theLab().killServerProcess(started(single, 'alice').pid);

    const status = await statusJson(theLab());
    assert.deepEqual(status.rules.map((rule) => [rule.port, rule.family, rule.source, rule.state]).sort(), [
      [60054, 'v4', '0.0.0.0/0', 'stale'],
      [60055, 'v4', '0.0.0.0/0', 'live'],
      [60055, 'v6', '::/0', 'live'],
    ]);
    assert.deepEqual(
      status.sessions.map((session) => [session.port, session.rule]),
      [[60055, 'open']],
    );
    const text = await theLab().moshwall(['status']);
    assert.equal(text.exitCode, 0, text.stderr);
    assert.match(text.stdout, /^ {2}60054\/udp v4 from 0\.0\.0\.0\/0 {2}STALE/m);
    // status changed nothing: the stale rule is still in ufw.
    assert.deepEqual(
      ourTuples(await theLab().ufwTuples()),
      expectedOurs([
        [60054, 'v4'],
        [60055, 'v4'],
        [60055, 'v6'],
      ]),
    );

    assert.equal(await theLab().udpReachable(60054, 'v4'), true, 'a stale rule still lets packets in');

    const swept = await syncJson(theLab());
    assert.deepEqual(specKeys(swept.closed), specKeys([spec(60054, 'v4')]));
    assert.equal(await theLab().udpReachable(60054, 'v4'), false, 'swept');
    assert.deepEqual(
      ourTuples(await theLab().ufwTuples()),
      expectedOurs([
        [60055, 'v4'],
        [60055, 'v6'],
      ]),
    );
    assertAdminUntouched('by the sync that removed the stale rule');
  });

  test('doctor exits 0 in the lab and reports ufw active', async () => {
    const result = await theLab().moshwall(['doctor', '--json']);
    assert.equal(result.exitCode, 0, result.stdout + result.stderr);
    const { findings } = JSON.parse(result.stdout) as DoctorJson;
    assert.deepEqual(
      findings.filter((finding) => finding.level === 'fail'),
      [],
    );
    const firewall = findings.find((finding) => finding.check === 'firewall');
    assert.equal(firewall?.level, 'ok');
    assert.match(firewall?.message ?? '', /\bufw is active\b/);
  });

  for (const [what, line, key] of [
    ['an unknown key', 'max_session = 3', 'max_session'],
    ['a bad value', 'max_sessions_per_user = -1', 'max_sessions_per_user'],
  ] as const) {
    test(`a config file with ${what} makes sync exit 3, naming file, line and key, and change nothing`, async () => {
      const waiting = await theLab().startMoshServer('alice', { port: 60056, via: 'local' });
      try {
        const toml = `# moshwall\nport_range = "60000:61000"\n${line}\n`;
        const argv = theLab().moshwallArgv(['sync'], toml);
        const file = argv[argv.indexOf('--config') + 1] ?? '';
        const before = rulesFiles(theLab());
        const result = await theLab().runServer(argv);
        assert.equal(result.exitCode, 3, result.stdout + result.stderr);
        assert.equal(result.stdout, '');
        assert.ok(result.stderr.includes(`${file}:3`), `names ${file}:3: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`\\b${key}\\b`));
        assert.equal(rulesFiles(theLab()), before, 'nothing changed');
        // With a good config the same sync would have opened 60056: the bad one really held it back.
        const good = await syncJson(theLab());
        assert.deepEqual(specKeys(good.opened), specKeys([spec(60056, 'v4')]));
      } finally {
        await theLab().killServerProcess(waiting.pid);
        await syncJson(theLab());
      }
    });
  }

  test('with the lab UFW disabled, sync exits 0 with a warning and adds nothing; flush still cleans up', async () => {
    const waiting = await theLab().startMoshServer('alice', { port: 60057, via: 'local' });
    try {
      const disabled = await theLab().ufw(['disable']);
      assert.equal(disabled.exitCode, 0, disabled.stderr);
      const before = rulesFiles(theLab());
      const report = await syncJson(theLab());
      assert.deepEqual(report.firewall.active, false);
      assert.deepEqual([report.opened, report.closed], [[], []]);
      assert.equal(report.warnings.length, 1, report.warnings.join('\n'));
      assert.match(report.warnings[0] ?? '', /inactive/);
      assert.equal(rulesFiles(theLab()), before, 'nothing was added (or removed)');
      const text = await theLab().moshwall(['sync']);
      assert.equal(text.exitCode, 0, text.stderr);
      assert.match(text.stdout, /^warning: .*inactive/m);

      const status = await statusJson(theLab());
      assert.equal(status.firewall.active, false);
      assert.deepEqual(
        status.sessions.map((session) => [session.port, session.pid, session.rule]),
        [
          [60055, started(dual, 'dual-stack').nsPid, 'unfiltered'],
          [60057, waiting.nsPid, 'unfiltered'],
        ],
      );

      const flushed = parseOk<{ closed: unknown[] }>(await theLab().moshwall(['flush', '--json']), 'flush');
      assert.equal(flushed.closed.length, 2, 'the two rules of 60055');
      assert.deepEqual(ourTuples(await theLab().ufwTuples()), []);
      assertAdminUntouched('by flush while ufw was inactive');
    } finally {
      const enabled = await theLab().ufw(['--force', 'enable']);
      assert.equal(enabled.exitCode, 0, enabled.stderr);
      await theLab().killServerProcess(waiting.pid);
    }
    const status = await theLab().ufw(['status']);
    assert.match(status.stdout, /^Status: active$/m);
  });
});
