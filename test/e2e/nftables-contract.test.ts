// The nftables backend against real nft, inside network namespaces made here (never the machine's own
// firewall): the backend contract over three admin layouts, real UDP packets over a veth, and the cost of
// one allow and one revoke. The namespaces go at the end, on failure, and on exit or signal (_teardown.ts).
import { spawnSync } from 'node:child_process';
import { release } from 'node:os';
import { describe } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createNftablesBackend, type NftablesBackendOptions } from '../../src/backends/nftables.ts';
import type { Runner } from '../../src/exec.ts';
import type { RuleSpec } from '../../src/rules.ts';
import { testBackendContract } from '../backends/contract.ts';
import { runOk } from './_exec.ts';
import { type NetBackend, runnerIn, TIMEOUT_MS, testOnRealNetwork, useNet } from './_netns.ts';
import { labSkipReason } from './lab.ts';

const RULESETS = new URL('../fixtures/nftables/rulesets/', import.meta.url);

/** Why this file cannot run here (not root, no nft), or false. */
function skipReason(): string | false {
  const root = labSkipReason();
  if (root) return root;
  return spawnSync('nft', ['--version']).status === 0 ? false : 'nft is not installed';
}

/** Runs nft in the namespace as the admin would, failing the test if nft fails. */
async function adminNft(netns: string, args: string[]): Promise<void> {
  await runOk(['ip', 'netns', 'exec', netns, 'nft', ...args], { timeoutMs: TIMEOUT_MS });
}

/** Replaces the namespace's whole ruleset with a fixture ruleset (each starts with "flush ruleset"). */
async function loadRuleset(netns: string, name: string): Promise<void> {
  await adminNft(netns, ['-f', fileURLToPath(new URL(`${name}.nft`, RULESETS))]);
}

/** The words of an admin rule with exactly `spec`'s match, in a table of `family`. */
function adminMatch(spec: RuleSpec, family: 'inet' | 'ip' | 'ip6'): string[] {
  const anywhere = spec.source === '0.0.0.0/0' || spec.source === '::/0';
  const source = anywhere ? [] : [spec.family === 'v6' ? 'ip6' : 'ip', 'saddr', spec.source];
  const nfproto =
    anywhere && family === 'inet' ? ['meta', 'nfproto', spec.family === 'v6' ? 'ipv6' : 'ipv4'] : [];
  return [...nfproto, ...source, 'udp', 'dport', String(spec.port)];
}

const layouts: {
  name: string;
  ruleset: string;
  table: { family: 'inet' | 'ip' | 'ip6'; name: string; chain: string };
  options: Pick<NftablesBackendOptions, 'table' | 'chain'>;
}[] = [
  {
    name: "Debian's inet filter (policy drop), discovered",
    ruleset: 'debian-drop',
    table: { family: 'inet', name: 'filter', chain: 'input' },
    options: {},
  },
  {
    name: 'an ip-only table, discovered',
    ruleset: 'ip-only',
    table: { family: 'ip', name: 'fw', chain: 'in4' },
    options: {},
  },
  {
    name: 'the ip table of an ip + ip6 pair, configured',
    ruleset: 'split',
    table: { family: 'ip', name: 'filter4', chain: 'input' },
    options: { table: { family: 'ip', name: 'filter4' }, chain: 'input' },
  },
];

describe('nftables backend for real, in network namespaces', { skip: skipReason() }, () => {
  const netns = useNet();
  const subject: NetBackend = {
    label: 'nftables',
    reset: () => loadRuleset(netns().server, 'debian-drop'),
    // This kernel's release, as the daemon passes it: on 6.12+ revokes expire elements (1 ms timeout).
    newBackend: (runner: Runner = runnerIn(netns().server)) =>
      createNftablesBackend({ runner, timeoutMs: TIMEOUT_MS, kernelRelease: release() }),
  };

  for (const [layout, kernelRelease] of [
    ...layouts.map((each) => [each, undefined] as const),
    [layouts[0], release()] as const,
  ]) {
    if (layout === undefined) continue;
    testBackendContract(
      `nftables, ${layout.name}${kernelRelease === undefined ? '' : `, revokes as on this kernel (${kernelRelease})`}`,
      async () => {
        const { server } = netns();
        await loadRuleset(server, layout.ruleset);
        const backend = createNftablesBackend({
          runner: runnerIn(server),
          timeoutMs: TIMEOUT_MS,
          ...layout.options,
          ...(kernelRelease === undefined ? {} : { kernelRelease }),
        });
        const { family, name, chain } = layout.table;
        return {
          backend,
          addForeignRule: async (spec, comment) => {
            const tail = comment === undefined ? [] : ['comment', `"${comment}"`];
            await adminNft(server, [
              'add',
              'rule',
              family,
              name,
              chain,
              ...adminMatch(spec, family),
              'accept',
              ...tail,
            ]);
          },
          cleanup: async () => {},
        };
      },
      { basePort: 60700 },
    );
  }

  testOnRealNetwork(netns, subject, {
    reload: {
      does: 'reloads the input chain',
      // The admin rewrites their chain: our jump goes with it; our chain and sets stay.
      run: async () => {
        const { server } = netns();
        await adminNft(server, ['flush', 'chain', 'inet', 'filter', 'input']);
        await adminNft(server, ['add', 'rule', 'inet', 'filter', 'input', 'tcp', 'dport', '22', 'accept']);
        await adminNft(server, [
          'add',
          'rule',
          'inet',
          'filter',
          'input',
          'icmpv6',
          'type',
          '{',
          'nd-neighbor-solicit,',
          'nd-neighbor-advert',
          '}',
          'accept',
        ]);
      },
      staleMessage: 'the stale element did not come back',
    },
    commandKey: (argv) => argv.join(' '),
  });
});
