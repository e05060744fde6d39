import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chooseBackend, createAutoBackend } from '../../../src/backends/auto.ts';
import type { Backend } from '../../../src/backends/types.ts';
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

  it('refuses to pick anything while firewalld runs (rules underneath it would be in the wrong place)', async () => {
    const ufw = named('ufw', { active: true });
    const auto = createAutoBackend([ufw], [{ name: 'firewalld', running: async () => true }]);
    const result = await auto.probe();
    assert.equal(result.installed, false);
    assert.match(result.detail[0] ?? '', /firewalld is running/);
    await assert.rejects(auto.allow([anySpec(60001)]), /before probe/);
    assert.deepEqual(await ufw.listRules(), []);
  });
});
