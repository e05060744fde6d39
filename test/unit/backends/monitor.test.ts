import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createIptablesBackend, isOurIptablesNftEvent } from '../../../src/backends/iptables.ts';
import { foreignChange, parseMonitorLine, watchMonitor } from '../../../src/backends/monitor.ts';
import { createNftablesBackend, isOurNftEvent } from '../../../src/backends/nftables.ts';
import type { LineWatcher } from '../../../src/exec.ts';
import { capturedRuns, recordedBackend } from './recording-runner.ts';

/** What real `nft monitor rules` printed in one scenario (test/fixtures/monitor/capture.sh). */
const printed = (name: string): string[] =>
  readFileSync(new URL(`../../fixtures/monitor/${name}.txt`, import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => line !== '');

/** A LineWatcher that records each start and lets the test play the child's lines and its exit. */
function fakeWatcher() {
  const starts: { argv: string[]; line: (text: string) => void; exit: (why: string) => void }[] = [];
  let closed = 0;
  const watcher: LineWatcher = (argv, onLine, onExit) => {
    starts.push({ argv, line: onLine, exit: onExit });
    return {
      close() {
        closed += 1;
      },
    };
  };
  return { watcher, starts, closed: () => closed };
}

describe('nft monitor lines', () => {
  it('are split into verb, object, family, table, name and the rest (without a printed handle)', () => {
    assert.deepEqual(
      parseMonitorLine('add rule inet filter moshwall_input handle 11 meta nfproto ipv6 udp dport @s accept'),
      {
        verb: 'add',
        object: 'rule',
        family: 'inet',
        table: 'filter',
        name: 'moshwall_input',
        rest: 'meta nfproto ipv6 udp dport @s accept',
      },
    );
    assert.deepEqual(parseMonitorLine('delete rule ip filter INPUT handle 3'), {
      verb: 'delete',
      object: 'rule',
      family: 'ip',
      table: 'filter',
      name: 'INPUT',
      rest: '',
    });
    assert.deepEqual(parseMonitorLine('delete table inet filter'), {
      verb: 'delete',
      object: 'table',
      family: 'inet',
      table: 'filter',
      rest: '',
    });
    assert.equal(parseMonitorLine('# new generation 5 by process 1234 (nft)'), undefined);
    assert.equal(parseMonitorLine(''), undefined);
  });

  it("nftables: every rule moshwall's scripts add is ours; nothing of an admin's reload is", () => {
    const ours = printed('nftables-ours');
    assert.ok(ours.length >= 8);
    for (const line of ours) {
      const event = parseMonitorLine(line);
      assert.ok(event && isOurNftEvent(event), line);
    }
    for (const line of printed('nftables-admin')) {
      const event = parseMonitorLine(line);
      assert.ok(event, line);
      assert.equal(isOurNftEvent(event), false, line);
    }
    const forged = parseMonitorLine('insert rule inet filter input jump moshwall_input');
    assert.ok(forged);
    assert.equal(isOurNftEvent(forged), false, 'a jump without our comment is not ours');
  });

  it("iptables-nft: our restores' rules are ours; an admin's restore shows rules deleted from INPUT", () => {
    for (const line of printed('iptables-nft-ours')) {
      const event = parseMonitorLine(line);
      assert.ok(event && isOurIptablesNftEvent(event), line);
    }
    const foreign = printed('iptables-nft-admin').filter((line) => {
      const event = parseMonitorLine(line);
      return event === undefined || !isOurIptablesNftEvent(event);
    });
    assert.deepEqual(foreign, [
      'delete rule ip filter INPUT handle 3',
      'add rule ip filter INPUT tcp dport 22 counter packets 0 bytes 0 accept',
    ]);
    const nftTable = parseMonitorLine('add rule inet filter moshwall-input udp dport 1 accept');
    assert.ok(nftTable);
    assert.equal(isOurIptablesNftEvent(nftTable), false, 'only the ip/ip6 filter tables are iptables-nft’s');
  });
});

describe('foreignChange', () => {
  it('is nothing for our own changes, comments and blanks, and the line for anything else', () => {
    for (const line of printed('nftables-ours'))
      assert.equal(foreignChange(line, isOurNftEvent), undefined, line);
    for (const line of ['', '# new generation 9 by process 1 (nft)']) {
      assert.equal(foreignChange(line, isOurNftEvent), undefined);
    }
    assert.equal(foreignChange(' delete table inet filter ', isOurNftEvent), 'delete table inet filter');
    assert.equal(foreignChange('something nft never printed', isOurNftEvent), 'something nft never printed');
  });
});

describe('watchMonitor', () => {
  it('calls onChange for foreign lines only, restarts a monitor that ended, and stops on close', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const fake = fakeWatcher();
    const changes: string[] = [];
    const watch = watchMonitor({
      watcher: fake.watcher,
      argv: ['nft', 'monitor', 'rules'],
      isOurs: isOurNftEvent,
      onChange: (what) => changes.push(what),
      restartMs: 5000,
      burstMs: 20,
    });
    assert.deepEqual(
      fake.starts.map((start) => start.argv),
      [['nft', 'monitor', 'rules']],
    );
    const first = fake.starts[0];
    assert.ok(first);
    for (const line of printed('nftables-ours')) first.line(line);
    assert.deepEqual(changes, []);
    // An admin's reload: reported at its first line, and once more after the burst (its last lines).
    for (const line of printed('nftables-admin')) first.line(line);
    assert.deepEqual(changes, ['delete rule inet filter input handle 23']);
    t.mock.timers.tick(19);
    assert.equal(changes.length, 1, 'not before the burst ends');
    t.mock.timers.tick(1);
    assert.deepEqual(changes, [
      'delete rule inet filter input handle 23',
      'add rule inet filter input icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept (and more)',
    ]);
    // A lone change is reported once.
    first.line('delete rule inet filter input handle 20');
    t.mock.timers.tick(60);
    assert.equal(changes.length, 3);
    assert.equal(changes.at(-1), 'delete rule inet filter input handle 20');

    first.exit('nft exited (code 1)');
    assert.equal(changes.at(-1), 'nft monitor ended (nft exited (code 1)); restarting it in 5 s');
    t.mock.timers.tick(4999);
    assert.equal(fake.starts.length, 1, 'not restarted before the delay');
    t.mock.timers.tick(1);
    assert.equal(fake.starts.length, 2, 'restarted');
    assert.equal(changes.at(-1), 'nft monitor restarted');

    // Ending again without a line in between doubles the delay; a line sets it back.
    fake.starts[1]?.exit('nft exited (code 1)');
    assert.equal(changes.at(-1), 'nft monitor ended (nft exited (code 1)); restarting it in 10 s');
    t.mock.timers.tick(9999);
    assert.equal(fake.starts.length, 2);
    t.mock.timers.tick(1);
    assert.equal(fake.starts.length, 3);
    fake.starts[2]?.line('# new generation 9 by process 1 (nft)');
    fake.starts[2]?.exit('nft exited (code 1)');
    assert.equal(changes.at(-1), 'nft monitor ended (nft exited (code 1)); restarting it in 5 s');
    t.mock.timers.tick(5000);
    assert.equal(fake.starts.length, 4);

    watch.close();
    assert.equal(fake.closed(), 1);
    fake.starts[3]?.exit('nft exited (signal SIGTERM)');
    t.mock.timers.tick(600_000);
    assert.equal(fake.starts.length, 4, 'no restart after close');
  });

  it('does not restart a monitor that could not be run at all (the resync remains)', (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const fake = fakeWatcher();
    const changes: string[] = [];
    watchMonitor({
      watcher: fake.watcher,
      argv: ['nft', 'monitor', 'rules'],
      isOurs: isOurNftEvent,
      onChange: (what) => changes.push(what),
      restartMs: 1,
    });
    fake.starts[0]?.exit('could not run nft: spawn nft ENOENT');
    t.mock.timers.tick(600_000);
    assert.equal(fake.starts.length, 1);
    assert.deepEqual(changes, [
      'nft monitor ended (could not run nft: spawn nft ENOENT); not restarting it, the periodic resync remains',
    ]);
  });
});

describe('backend watchers: the exact monitor each backend starts', () => {
  const ipt = capturedRuns(new URL('../../fixtures/iptables/', import.meta.url));

  it('nftables runs `nft monitor rules` when given a watcher, and has no watchChanges without one', () => {
    const fake = fakeWatcher();
    const { backend, calls } = recordedBackend([], (runner) =>
      createNftablesBackend({ runner, timeoutMs: 1, watcher: fake.watcher }),
    );
    const watch = backend.watchChanges?.(() => {});
    assert.deepEqual(
      fake.starts.map((start) => start.argv),
      [['nft', 'monitor', 'rules']],
    );
    assert.deepEqual(calls, []);
    watch?.close();
    const bare = recordedBackend([], (runner) => createNftablesBackend({ runner, timeoutMs: 1 }));
    assert.equal(bare.backend.watchChanges, undefined);
  });

  it('iptables-nft runs `nft monitor rules`; iptables-legacy runs nothing (it has no change events)', () => {
    for (const [variant, expected] of [
      ['nft', [['nft', 'monitor', 'rules']]],
      ['legacy', []],
    ] as const) {
      const fake = fakeWatcher();
      const { backend } = recordedBackend([], (runner) =>
        createIptablesBackend({ runner, timeoutMs: 1, variant, watcher: fake.watcher }),
      );
      backend.watchChanges?.(() => {}).close();
      assert.deepEqual(
        fake.starts.map((start) => start.argv),
        expected,
        variant,
      );
    }
  });

  it("the system's iptables is watched when its --version says nf_tables, not when it says legacy", async () => {
    for (const [variant, expected] of [
      ['nft', 1],
      ['legacy', 0],
    ] as const) {
      const fake = fakeWatcher();
      const { backend } = recordedBackend(
        [
          ipt.real(`version-${variant}`),
          ipt.real(`save-${variant}-v4-baseline`),
          ipt.real(`save-${variant}-v6-baseline`),
        ],
        (runner) => createIptablesBackend({ runner, timeoutMs: 1, watcher: fake.watcher }),
      );
      backend.watchChanges?.(() => {}).close();
      assert.equal(fake.starts.length, 0, 'nothing is known before the probe');
      await backend.probe();
      backend.watchChanges?.(() => {}).close();
      assert.equal(fake.starts.length, expected, variant);
    }
  });
});
