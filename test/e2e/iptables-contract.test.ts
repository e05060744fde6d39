// The iptables backend against real iptables-nft and iptables-legacy, inside network namespaces made here
// (never the machine's own firewall): the backend contract, real UDP packets over a veth, and the cost of
// one allow and one revoke. The namespaces go at the end, on failure, and on exit or signal (_teardown.ts).
import { spawnSync } from 'node:child_process';
import { describe } from 'node:test';
import { createIptablesBackend, type IptablesVariant } from '../../src/backends/iptables.ts';
import type { Runner } from '../../src/exec.ts';
import { testBackendContract } from '../backends/contract.ts';
import { runOk } from './_exec.ts';
import { IPTABLES_RULES } from './_firewalls.ts';
import { type NetBackend, runnerIn, TIMEOUT_MS, testOnRealNetwork, useNet } from './_netns.ts';
import { labSkipReason } from './lab.ts';

const VARIANTS: IptablesVariant[] = ['nft', 'legacy'];

/** Why this file cannot run here (not root, an iptables variant missing), or false. */
function skipReason(): string | false {
  const root = labSkipReason();
  if (root) return root;
  const missing = VARIANTS.map((variant) => `iptables-${variant}`).filter(
    (cli) => spawnSync(cli, ['--version']).status !== 0,
  );
  return missing.length === 0 ? false : `${missing.join(', ')} not installed`;
}

for (const variant of VARIANTS) {
  const cli = { v4: `iptables-${variant}`, v6: `ip6tables-${variant}` };

  describe(`iptables backend (${variant}) for real, in network namespaces`, { skip: skipReason() }, () => {
    const netns = useNet();
    /** Runs iptables/ip6tables in the server namespace as the admin would, failing the test if it fails. */
    const iptables = async (family: 'v4' | 'v6', args: string[]) => {
      await runOk(['ip', 'netns', 'exec', netns().server, cli[family], '-w', ...args], {
        timeoutMs: TIMEOUT_MS,
      });
    };
    const subject: NetBackend = {
      label: `iptables-${variant}`,
      /** Replaces both filter tables with the admin's baseline (_firewalls.ts; our chain, if any, goes too). */
      reset: async () => {
        for (const family of ['v4', 'v6'] as const) {
          await runOk(['ip', 'netns', 'exec', netns().server, `${cli[family]}-restore`, '-w'], {
            timeoutMs: TIMEOUT_MS,
            input: IPTABLES_RULES[family],
          });
        }
      },
      newBackend: (runner: Runner = runnerIn(netns().server)) =>
        createIptablesBackend({ runner, timeoutMs: TIMEOUT_MS, variant }),
    };

    testBackendContract(
      `iptables-${variant}`,
      async () => {
        await subject.reset();
        return {
          backend: subject.newBackend(),
          addForeignRule: async (spec, comment) => {
            const anywhere = spec.source === '0.0.0.0/0' || spec.source === '::/0';
            await iptables(spec.family, [
              ...['-A', 'INPUT', '-p', 'udp', '--dport', String(spec.port)],
              ...(anywhere ? [] : ['-s', spec.source]),
              ...(comment === undefined ? [] : ['-m', 'comment', '--comment', comment]),
              ...['-j', 'ACCEPT'],
            ]);
          },
          cleanup: async () => {},
        };
      },
      { basePort: 60700 },
    );

    testOnRealNetwork(netns, subject, {
      reload: {
        does: 'flushes INPUT',
        run: async () => {
          await iptables('v4', ['-F', 'INPUT']);
          await iptables('v4', ['-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']);
        },
        staleMessage: 'the stale rule did not come back',
      },
      commandKey: (argv) => argv[0] ?? '',
    });
  });
}
