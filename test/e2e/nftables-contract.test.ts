// The nftables backend against real nft, inside network namespaces made here (never the machine's own
// firewall): the backend contract over three admin layouts, real UDP packets over a veth, and the cost of
// one allow and one revoke. The namespaces go at the end, on failure, and on exit or signal (_teardown.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createNftablesBackend, type NftablesBackendOptions } from '../../src/backends/nftables.ts';
import type { RuleSpec } from '../../src/backends/types.ts';
import { type ExecOptions, type Runner, runCommand } from '../../src/exec.ts';
import { testBackendContract } from '../backends/contract.ts';
import { run, runOk, type Started, start } from './_exec.ts';
import { setUpNetwork } from './_server.ts';
import { LAB_PREFIX, type LabState, ownerLine, teardownSync, trackLab } from './_teardown.ts';
import { labSkipReason } from './lab.ts';

const RULESETS = new URL('../fixtures/nftables/rulesets/', import.meta.url);
const UDP_SCRIPT = fileURLToPath(new URL('./fixtures/udp.mjs', import.meta.url));
const SERVER = { v4: '192.0.2.1', v6: '2001:db8::1' };
const CLIENT = { v4: '192.0.2.2', v6: '2001:db8::2' };
const TIMEOUT_MS = 10_000;

/** Why this file cannot run here (not root, no nft), or false. */
function skipReason(): string | false {
  const root = labSkipReason();
  if (root) return root;
  return spawnSync('nft', ['--version']).status === 0 ? false : 'nft is not installed';
}

/** A server and a client namespace joined by a veth (192.0.2.0/24, 2001:db8::/64), as the lab makes them. */
interface Net {
  state: LabState;
  server: string;
  client: string;
}

/** Makes the two namespaces, recorded so that teardownSync (or the exit safety net) removes them. */
async function createNet(): Promise<Net> {
  const state = trackLab();
  try {
    const id = randomBytes(4).toString('hex');
    state.dir = mkdtempSync(join(tmpdir(), `${LAB_PREFIX}${id}-`));
    writeFileSync(join(state.dir, 'owner'), ownerLine());
    const server = { netns: `${LAB_PREFIX}${id}-srv`, ...SERVER };
    const client = { netns: `${LAB_PREFIX}${id}-cli`, ...CLIENT };
    await setUpNetwork(state, server, client);
    return { state, server: server.netns, client: client.netns };
  } catch (error) {
    teardownSync(state);
    throw error;
  }
}

/** moshwall's Runner, but inside the namespace: `ip netns exec NS argv…`. */
function runnerIn(netns: string): Runner {
  return (argv: string[], options: ExecOptions) =>
    runCommand(['ip', 'netns', 'exec', netns, ...argv], options);
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

/** The median of some numbers. */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
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
  let net: Net | undefined;
  let hostRuleset = '';
  const netns = () => {
    assert.ok(net, 'the namespaces were not made');
    return net;
  };
  const hostNft = async () => (await runOk(['nft', 'list', 'ruleset'], { timeoutMs: TIMEOUT_MS })).stdout;

  before(async () => {
    hostRuleset = await hostNft();
    net = await createNet();
  });
  after(async () => {
    const problems = net === undefined ? [] : teardownSync(net.state);
    assert.deepEqual(problems, []);
    assert.equal(await hostNft(), hostRuleset, "the machine's own ruleset changed");
  });

  for (const layout of layouts) {
    testBackendContract(
      `nftables, ${layout.name}`,
      async () => {
        const { server } = netns();
        await loadRuleset(server, layout.ruleset);
        const backend = createNftablesBackend({
          runner: runnerIn(server),
          timeoutMs: TIMEOUT_MS,
          ...layout.options,
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

  describe('real packets from the client namespace', () => {
    const port = 60750;
    const listeners: Started[] = [];

    /** Starts a UDP echo on the server address of `family` and waits until it is bound. */
    const listen = async (family: 'v4' | 'v6') => {
      const { server, state } = netns();
      const echo = start([
        'ip',
        'netns',
        'exec',
        server,
        process.execPath,
        UDP_SCRIPT,
        'echo',
        SERVER[family],
        String(port),
        '120000',
      ]);
      state.children.push(echo);
      listeners.push(echo);
      const deadline = Date.now() + 5000;
      while (!echo.output().stdout.includes('ready')) {
        assert.ok(Date.now() < deadline, `the ${family} echo did not start: ${echo.output().stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    /** Whether a datagram from the client (a fresh source port each time) reaches the echo and comes back. */
    const reaches = async (family: 'v4' | 'v6') => {
      const argv = [
        'ip',
        'netns',
        'exec',
        netns().client,
        process.execPath,
        UDP_SCRIPT,
        'probe',
        SERVER[family],
        String(port),
        '700',
      ];
      const result = await run(argv, { timeoutMs: TIMEOUT_MS });
      assert.ok(result.exitCode === 0 || result.exitCode === 1, result.stderr);
      return result.exitCode === 0;
    };
    const v4 = (source = '0.0.0.0/0'): RuleSpec => ({ port, family: 'v4', source });
    const v6 = (source = '::/0'): RuleSpec => ({ port, family: 'v6', source });

    before(async () => {
      await loadRuleset(netns().server, 'debian-drop');
      await listen('v4');
      await listen('v6');
    });
    after(async () => {
      for (const listener of listeners) listener.child.kill('SIGTERM');
      await Promise.all(listeners.map((listener) => listener.done));
    });

    it('a port is reachable only between allow and revoke, per family and per source network', async () => {
      const { server } = netns();
      await loadRuleset(server, 'debian-drop');
      const backend = createNftablesBackend({ runner: runnerIn(server), timeoutMs: TIMEOUT_MS });
      assert.deepEqual([await reaches('v4'), await reaches('v6')], [false, false], 'closed before allow');
      await backend.allow([v4()]);
      assert.deepEqual([await reaches('v4'), await reaches('v6')], [true, false], 'v4 open, v6 still closed');
      await backend.allow([v6()]);
      assert.equal(await reaches('v6'), true, 'v6 open');
      await backend.revoke([v4(), v6()]);
      assert.deepEqual([await reaches('v4'), await reaches('v6')], [false, false], 'closed after revoke');
      await backend.allow([v4('198.51.100.0/24'), v6('2001:db8:1::/48')]);
      assert.deepEqual([await reaches('v4'), await reaches('v6')], [false, false], 'other source networks');
      await backend.allow([v4('192.0.2.0/24'), v6(`${CLIENT.v6}/128`)]);
      assert.deepEqual([await reaches('v4'), await reaches('v6')], [true, true], "the client's networks");
      await backend.revoke([v4('192.0.2.0/24'), v6(`${CLIENT.v6}/128`)]);
      assert.deepEqual([await reaches('v4'), await reaches('v6')], [false, false], 'closed again');
    });

    it('after the admin reloads the input chain nothing of ours is open, and the next allow reopens only what it is given', async () => {
      const { server } = netns();
      await loadRuleset(server, 'debian-drop');
      const backend = createNftablesBackend({ runner: runnerIn(server), timeoutMs: TIMEOUT_MS });
      const stale: RuleSpec = { port: port + 1, family: 'v4', source: '0.0.0.0/0' };
      await backend.allow([v4(), stale]);
      assert.equal(await reaches('v4'), true);
      // The admin rewrites their chain: our jump goes with it; our chain and sets stay.
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
      assert.equal(await reaches('v4'), false);
      assert.deepEqual(
        (await backend.listRules()).filter((rule) => rule.ours),
        [],
      );
      await backend.allow([v4()]);
      assert.equal(await reaches('v4'), true);
      const ours = (await backend.listRules()).filter((rule) => rule.ours).map((rule) => rule.ports);
      assert.deepEqual(ours, [[{ first: port, last: port }]], 'the stale element did not come back');
    });
  });

  it('measures one allow and one revoke (median of 20) with 0 and 100 rules of ours', async (t) => {
    const { server } = netns();
    const inner = runnerIn(server);
    const spent = new Map<string, number[]>();
    let phase = 'setup';
    const runner: Runner = async (argv, options) => {
      const result = await inner(argv, options);
      const key = `${phase}: ${argv.join(' ')}`;
      spent.set(key, [...(spent.get(key) ?? []), result.durationMs]);
      return result;
    };
    const backend = createNftablesBackend({ runner, timeoutMs: TIMEOUT_MS });
    const spec: RuleSpec = { port: 60800, family: 'v4', source: '0.0.0.0/0' };
    for (const existing of [0, 100]) {
      await loadRuleset(server, 'debian-drop');
      const others = Array.from(
        { length: existing },
        (_, index): RuleSpec => ({
          port: 61000 + index,
          family: 'v4',
          source: '0.0.0.0/0',
        }),
      );
      if (others.length > 0) await backend.allow(others);
      await backend.allow([spec]);
      await backend.revoke([spec]);
      spent.clear();
      const totals = { allow: [] as number[], revoke: [] as number[] };
      for (let round = 0; round < 20; round++) {
        for (const kind of ['allow', 'revoke'] as const) {
          phase = kind;
          const begun = performance.now();
          await backend[kind]([spec]);
          totals[kind].push(performance.now() - begun);
        }
      }
      const commands = [...spent].map(([key, ms]) => `${key} ${median(ms).toFixed(1)}`).join('; ');
      t.diagnostic(
        `nftables, ${existing} rules of ours: allow ${median(totals.allow).toFixed(1)} ms, ` +
          `revoke ${median(totals.revoke).toFixed(1)} ms (${commands} ms)`,
      );
    }
    const bare: number[] = [];
    for (let round = 0; round < 20; round++)
      bare.push((await inner(['true'], { timeoutMs: TIMEOUT_MS })).durationMs);
    t.diagnostic(
      `\`ip netns exec NS true\` alone: ${median(bare).toFixed(1)} ms (included in each command above)`,
    );
  });
});
