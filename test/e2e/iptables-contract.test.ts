// The iptables backend against real iptables-nft and iptables-legacy, inside network namespaces made here
// (never the machine's own firewall): the backend contract, real UDP packets over a veth, and the cost of
// one allow and one revoke. The namespaces go at the end, on failure, and on exit or signal (_teardown.ts).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createIptablesBackend, type IptablesVariant } from '../../src/backends/iptables.ts';
import type { RuleSpec } from '../../src/backends/types.ts';
import { type ExecOptions, type Runner, runCommand } from '../../src/exec.ts';
import { testBackendContract } from '../backends/contract.ts';
import { run, runOk, type Started, start } from './_exec.ts';
import { setUpNetwork } from './_server.ts';
import { LAB_PREFIX, type LabState, ownerLine, teardownSync, trackLab } from './_teardown.ts';
import { labSkipReason } from './lab.ts';

const UDP_SCRIPT = fileURLToPath(new URL('./fixtures/udp.mjs', import.meta.url));
const SERVER = { v4: '192.0.2.1', v6: '2001:db8::1' };
const CLIENT = { v4: '192.0.2.2', v6: '2001:db8::2' };
const TIMEOUT_MS = 10_000;
const VARIANTS: IptablesVariant[] = ['nft', 'legacy'];

/** The stock admin firewall: INPUT policy DROP, ssh accepted (and ICMPv6, for neighbour discovery). */
const BASELINE = {
  v4: [
    '*filter',
    ':INPUT DROP [0:0]',
    ':FORWARD ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT',
    'COMMIT',
    '',
  ],
  v6: [
    ...['*filter', ':INPUT DROP [0:0]', ':FORWARD ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]'],
    ...['-A INPUT -p ipv6-icmp -j ACCEPT', '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT', 'COMMIT', ''],
  ],
};

/** Why this file cannot run here (not root, an iptables variant missing), or false. */
function skipReason(): string | false {
  const root = labSkipReason();
  if (root) return root;
  const missing = VARIANTS.map((variant) => `iptables-${variant}`).filter(
    (cli) => spawnSync(cli, ['--version']).status !== 0,
  );
  return missing.length === 0 ? false : `${missing.join(', ')} not installed`;
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

/** The median of some numbers. */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

for (const variant of VARIANTS) {
  const cli = { v4: `iptables-${variant}`, v6: `ip6tables-${variant}` };

  describe(`iptables backend (${variant}) for real, in network namespaces`, { skip: skipReason() }, () => {
    let net: Net | undefined;
    let hostRuleset = '';
    // Only nft is read on the host: reading iptables-legacy there would instantiate its tables.
    const hostNft = async () => (await runOk(['nft', 'list', 'ruleset'], { timeoutMs: TIMEOUT_MS })).stdout;
    const netns = () => {
      assert.ok(net, 'the namespaces were not made');
      return net;
    };
    /** Replaces both filter tables with the stock admin firewall (our chain, if any, goes too). */
    const loadBaseline = async () => {
      for (const family of ['v4', 'v6'] as const) {
        await runOk(['ip', 'netns', 'exec', netns().server, `${cli[family]}-restore`, '-w'], {
          timeoutMs: TIMEOUT_MS,
          input: BASELINE[family].join('\n'),
        });
      }
    };
    /** Runs iptables/ip6tables in the server namespace as the admin would, failing the test if it fails. */
    const iptables = async (family: 'v4' | 'v6', args: string[]) => {
      await runOk(['ip', 'netns', 'exec', netns().server, cli[family], '-w', ...args], {
        timeoutMs: TIMEOUT_MS,
      });
    };
    const newBackend = (runner: Runner = runnerIn(netns().server)) =>
      createIptablesBackend({ runner, timeoutMs: TIMEOUT_MS, variant });

    before(async () => {
      hostRuleset = await hostNft();
      net = await createNet();
    });
    after(async () => {
      assert.deepEqual(net === undefined ? [] : teardownSync(net.state), []);
      assert.equal(await hostNft(), hostRuleset, "the machine's own ruleset changed");
    });

    testBackendContract(
      `iptables-${variant}`,
      async () => {
        await loadBaseline();
        return {
          backend: newBackend(),
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

    describe('real packets from the client namespace', () => {
      const port = 60750;
      const listeners: Started[] = [];
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
        await loadBaseline();
        await listen('v4');
        await listen('v6');
      });
      after(async () => {
        for (const listener of listeners) listener.child.kill('SIGTERM');
        await Promise.all(listeners.map((listener) => listener.done));
      });

      it('a port is reachable only between allow and revoke, per family and per source network', async () => {
        await loadBaseline();
        const backend = newBackend();
        assert.deepEqual([await reaches('v4'), await reaches('v6')], [false, false], 'closed before allow');
        await backend.allow([v4()]);
        assert.deepEqual(
          [await reaches('v4'), await reaches('v6')],
          [true, false],
          'v4 open, v6 still closed',
        );
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

      it('after the admin flushes INPUT nothing of ours is open, and the next allow reopens only what it is given', async () => {
        await loadBaseline();
        const backend = newBackend();
        const stale: RuleSpec = { port: port + 1, family: 'v4', source: '0.0.0.0/0' };
        await backend.allow([v4(), stale]);
        assert.equal(await reaches('v4'), true);
        await iptables('v4', ['-F', 'INPUT']);
        await iptables('v4', ['-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']);
        assert.equal(await reaches('v4'), false);
        assert.deepEqual(
          (await backend.listRules()).filter((rule) => rule.ours),
          [],
        );
        await backend.allow([v4()]);
        assert.equal(await reaches('v4'), true);
        const ours = (await backend.listRules()).filter((rule) => rule.ours).map((rule) => rule.ports);
        assert.deepEqual(ours, [[{ first: port, last: port }]], 'the stale rule did not come back');
      });
    });

    it('measures one allow and one revoke (median of 20) with 0 and 100 rules of ours', async (t) => {
      const inner = runnerIn(netns().server);
      const spent = new Map<string, number[]>();
      let phase = 'setup';
      const runner: Runner = async (argv, options) => {
        const result = await inner(argv, options);
        const key = `${phase}: ${argv[0]}`;
        spent.set(key, [...(spent.get(key) ?? []), result.durationMs]);
        return result;
      };
      const backend = newBackend(runner);
      const spec: RuleSpec = { port: 60800, family: 'v4', source: '0.0.0.0/0' };
      for (const existing of [0, 100]) {
        await loadBaseline();
        const others = Array.from(
          { length: existing },
          (_, index): RuleSpec => ({ port: 61000 + index, family: 'v4', source: '0.0.0.0/0' }),
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
          `iptables-${variant}, ${existing} rules of ours: allow ${median(totals.allow).toFixed(1)} ms, ` +
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
}
