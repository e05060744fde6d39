import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseBackend, createAutoBackend } from '../../../src/backends/auto.ts';
import type { Backend } from '../../../src/firewall.ts';
import { anySpec } from '../../support/builders.ts';
import { createMemoryBackend } from './memory-backend.ts';

const probe = (installed: boolean, active: boolean) => ({ installed, active, ipv6: true, detail: [] });

/** A memory backend under another name (auto reports the chosen backend's name). */
const named = (name: string, options: Parameters<typeof createMemoryBackend>[0]): Backend => {
  const backend = createMemoryBackend(options);
  return {
    ...backend,
    name,
    probe: () => backend.probe(),
    listRules: () => backend.listRules(),
    allow: (s) => backend.allow(s),
    revoke: (s) => backend.revoke(s),
  };
};

describe('chooseBackend', () => {
  const cases: [string, [boolean, boolean][], number, RegExp][] = [
    [
      'the first active one',
      [
        [true, true],
        [true, true],
        [true, false],
      ],
      0,
      /^ufw is active$/,
    ],
    [
      'skipping an inactive UFW for active nftables',
      [
        [true, false],
        [true, true],
        [true, true],
      ],
      1,
      /nftables is active \(ufw inactive\)/,
    ],
    [
      'an installed one when none is active',
      [
        [false, false],
        [true, false],
        [true, false],
      ],
      1,
      /no firewall is active; nftables is installed/,
    ],
    [
      'none when nothing is installed',
      [
        [false, false],
        [false, false],
        [false, false],
      ],
      -1,
      /none of ufw, nftables, iptables/,
    ],
  ];
  for (const [name, states, index, reason] of cases) {
    it(`picks ${name}`, () => {
      const choice = chooseBackend(
        ['ufw', 'nftables', 'iptables'].map((backend, position) => ({
          name: backend,
          probe: probe(...(states[position] ?? [false, false])),
        })),
      );
      assert.equal(choice.index, index);
      assert.match(choice.reason, reason);
    });
  }
});

describe('createAutoBackend', () => {
  it('delegates to the chosen backend after probing', async () => {
    const nft = named('nftables', { active: true });
    const auto = createAutoBackend(
      [named('ufw', { active: false }), nft, named('iptables', { active: true })],
      [],
    );
    const result = await auto.probe();
    assert.equal(auto.name, 'nftables');
    assert.match(result.detail[0] ?? '', /auto: nftables is active \(ufw inactive\)/);
    await auto.allow([anySpec(60001)]);
    assert.equal((await nft.listRules()).length, 1);
  });

  it('refuses to pick anything while a manager it has no backend for runs (rules underneath it would be misplaced)', async () => {
    const ufw = named('ufw', { active: true });
    const auto = createAutoBackend([ufw], [{ name: 'shorewall', running: async () => true }]);
    const result = await auto.probe();
    assert.equal(result.installed, false);
    assert.match(result.detail[0] ?? '', /shorewall is running/);
    await assert.rejects(auto.allow([anySpec(60001)]), /before probe/);
    assert.deepEqual(await ufw.listRules(), []);
  });
});

describe('auto-detection with firewalld', () => {
  const order = ['ufw', 'firewalld', 'nftables', 'iptables'];
  const choose = (states: [boolean, boolean][]) =>
    chooseBackend(
      order.map((backend, position) => ({
        name: backend,
        probe: { ...probe(...(states[position] ?? [false, false])), detail: [`${backend} detail`] },
      })),
    );

  it('picks a running firewalld over nftables and iptables, whose rules would sit under its tables', () => {
    const choice = choose([
      [true, false],
      [true, true],
      [true, true],
      [true, true],
    ]);
    assert.equal(choice.index, 1);
    assert.equal(choice.reason, 'firewalld is running (ufw inactive)');
    assert.deepEqual(choice.candidates, [
      'auto candidate ufw: installed, inactive',
      'auto candidate firewalld: active',
      'auto candidate nftables: active',
      'auto candidate iptables: active',
    ]);
  });

  it('picks an active UFW first when firewalld is stopped', () => {
    const choice = choose([
      [true, true],
      [true, false],
      [true, true],
      [true, false],
    ]);
    assert.equal(choice.index, 0);
  });

  it('refuses when UFW and firewalld are both active, explaining why', () => {
    const choice = choose([
      [true, true],
      [true, true],
      [true, true],
      [true, true],
    ]);
    assert.equal(choice.index, -1);
    assert.match(
      choice.reason,
      /^ufw and firewalld are both active: .*stop one of them, or set backend explicitly$/,
    );
  });

  it('never falls back to a stopped firewalld (it can do nothing), but to the next installed tool', () => {
    const choice = choose([
      [false, false],
      [true, false],
      [true, false],
      [false, false],
    ]);
    assert.equal(choice.index, 2);
    assert.equal(choice.reason, 'no firewall is active; nftables is installed');
    assert.equal(choice.candidates[0], 'auto candidate ufw: not usable (ufw detail)');
    const none = choose([
      [false, false],
      [true, false],
      [false, false],
      [false, false],
    ]);
    assert.equal(none.index, -1);
  });

  it('createAutoBackend delegates to firewalld and prints the reason and every candidate', async () => {
    const firewalld = named('firewalld', { active: true });
    const nft = named('nftables', { active: true });
    const auto = createAutoBackend([
      named('ufw', { active: false }),
      firewalld,
      nft,
      named('iptables', { active: true }),
    ]);
    const result = await auto.probe();
    assert.equal(auto.name, 'firewalld');
    assert.deepEqual(result.detail.slice(0, 5), [
      'auto: firewalld is running (ufw inactive)',
      'auto candidate ufw: installed, inactive',
      'auto candidate firewalld: active',
      'auto candidate nftables: active',
      'auto candidate iptables: active',
    ]);
    await auto.allow([anySpec(60001)]);
    assert.equal((await firewalld.listRules()).length, 1);
    assert.deepEqual(await nft.listRules(), []);
  });

  it('createAutoBackend with UFW and firewalld active is unusable and writes nothing', async () => {
    const ufw = named('ufw', { active: true });
    const firewalld = named('firewalld', { active: true });
    const auto = createAutoBackend([ufw, firewalld, named('nftables', { active: true })]);
    const result = await auto.probe();
    assert.equal(result.installed, false);
    assert.match(result.detail[0] ?? '', /^auto: ufw and firewalld are both active/);
    await assert.rejects(auto.allow([anySpec(60001)]), /before probe/);
    assert.deepEqual([await ufw.listRules(), await firewalld.listRules()], [[], []]);
  });
});
