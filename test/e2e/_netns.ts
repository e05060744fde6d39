// What the iptables and nftables contract tests share: a server and a client network namespace joined by
// a veth, made here and never the machine's own firewall; moshwall's Runner inside the server one; real
// UDP packets from the client; and the cost of one allow and one revoke. The namespaces go at the end, on
// failure, and on exit or signal (_teardown.ts).
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type ExecOptions, type Runner, runCommand } from '../../src/exec.ts';
import type { Backend } from '../../src/firewall.ts';
import type { RuleSpec } from '../../src/rules.ts';
import { median } from '../support/stats.ts';
import { run, runOk, type Started, start } from './_exec.ts';
import { waitUntil } from './_poll.ts';
import { setUpNetwork } from './_server.ts';
import { LAB_PREFIX, type LabState, ownerLine, teardownSync, trackLab } from './_teardown.ts';

const UDP_SCRIPT = fileURLToPath(new URL('./fixtures/udp.mjs', import.meta.url));
export const SERVER = { v4: '192.0.2.1', v6: '2001:db8::1' };
export const CLIENT = { v4: '192.0.2.2', v6: '2001:db8::2' };
export const TIMEOUT_MS = 10_000;

type Family = 'v4' | 'v6';

/** A server and a client namespace joined by a veth (192.0.2.0/24, 2001:db8::/64), as the lab makes them. */
export interface Net {
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

/** The machine's own ruleset, as nft lists it (reading iptables-legacy here would instantiate its tables). */
const hostNft = async () => (await runOk(['nft', 'list', 'ruleset'], { timeoutMs: TIMEOUT_MS })).stdout;

/**
 * Registers, on the enclosing describe, a before() that makes the namespaces and an after() that removes
 * them and asserts the machine's own ruleset did not change. Returns the namespaces (failing the test if
 * they were not made).
 */
export function useNet(): () => Net {
  let net: Net | undefined;
  let hostRuleset = '';
  before(async () => {
    hostRuleset = await hostNft();
    net = await createNet();
  });
  after(async () => {
    assert.deepEqual(net === undefined ? [] : teardownSync(net.state), []);
    assert.equal(await hostNft(), hostRuleset, "the machine's own ruleset changed");
  });
  return () => {
    assert.ok(net, 'the namespaces were not made');
    return net;
  };
}

/** moshwall's Runner, but inside the namespace: `ip netns exec NS argv…`. */
export function runnerIn(netns: string): Runner {
  return (argv: string[], options: ExecOptions) =>
    runCommand(['ip', 'netns', 'exec', netns, ...argv], options);
}

/** How a contract test file drives its backend in the server namespace. */
export interface NetBackend {
  /** Names the backend in diagnostics: "iptables-nft", "nftables". */
  label: string;
  /** Loads the stock admin firewall into the server namespace: input dropped, ssh (and ICMPv6) accepted. */
  reset(): Promise<void>;
  /** A backend in its default placement, its commands through `runner` (by default runnerIn the server). */
  newBackend(runner?: Runner): Backend;
}

/** What differs between backends in testOnRealNetwork. */
export interface RealNetworkOptions {
  /** The admin replacing their input rules under moshwall, for the second real-packets test. */
  reload: {
    /** What the admin does, in the title: "flushes INPUT", "reloads the input chain". */
    does: string;
    /** Rewrites the admin's input rules in the server namespace: our jump goes, ssh stays accepted. */
    run(): Promise<void>;
    /** The message if the spec allowed beside ours, but not again after the reload, comes back. */
    staleMessage: string;
  };
  /** How the timing names a command: its program, or its whole argv. */
  commandKey(argv: string[]): string;
}

/**
 * Registers, after the backend contract, what a backend does on the real network between the namespaces:
 * the suite "real packets from the client namespace", then the timing of one allow and one revoke.
 */
export function testOnRealNetwork(netns: () => Net, subject: NetBackend, options: RealNetworkOptions): void {
  describeRealPackets(netns, subject, options.reload);
  measureAllowRevoke(netns, subject, options.commandKey);
}

/**
 * A UDP echo on each server address at `port`, probed from the client: open exactly between allow and
 * revoke, per family and per source network; nothing of ours open after the admin reloads their rules.
 */
function describeRealPackets(
  netns: () => Net,
  subject: NetBackend,
  reload: RealNetworkOptions['reload'],
  port = 60750,
): void {
  describe('real packets from the client namespace', () => {
    const listeners: Started[] = [];

    /** Starts a UDP echo on the server address of `family` and waits until it is bound. */
    const listen = async (family: Family) => {
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
      assert.ok(
        await waitUntil(() => echo.output().stdout.includes('ready'), 5000),
        `the ${family} echo did not start: ${echo.output().stderr}`,
      );
    };
    /** Whether a datagram from the client (a fresh source port each time) reaches the echo and comes back. */
    const reaches = async (family: Family) => {
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
      await subject.reset();
      await listen('v4');
      await listen('v6');
    });
    after(async () => {
      for (const listener of listeners) listener.child.kill('SIGTERM');
      await Promise.all(listeners.map((listener) => listener.done));
    });

    it('a port is reachable only between allow and revoke, per family and per source network', async () => {
      await subject.reset();
      const backend = subject.newBackend();
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

    const reloadTitle = `after the admin ${reload.does} nothing of ours is open, and the next allow reopens only what it is given`;
    it(reloadTitle, async () => {
      await subject.reset();
      const backend = subject.newBackend();
      const stale: RuleSpec = { port: port + 1, family: 'v4', source: '0.0.0.0/0' };
      await backend.allow([v4(), stale]);
      assert.equal(await reaches('v4'), true);
      await reload.run();
      assert.equal(await reaches('v4'), false);
      assert.deepEqual(
        (await backend.listRules()).filter((rule) => rule.ours),
        [],
      );
      await backend.allow([v4()]);
      assert.equal(await reaches('v4'), true);
      const ours = (await backend.listRules()).filter((rule) => rule.ours).map((rule) => rule.ports);
      assert.deepEqual(ours, [[{ first: port, last: port }]], reload.staleMessage);
    });
  });
}

/**
 * Times one allow and one revoke (median of 20) over 0 and then 100 rules of ours, reporting each
 * command's median under its `commandKey` and the bare cost of `ip netns exec`.
 */
function measureAllowRevoke(
  netns: () => Net,
  subject: NetBackend,
  commandKey: (argv: string[]) => string,
): void {
  it('measures one allow and one revoke (median of 20) with 0 and 100 rules of ours', async (t) => {
    const inner = runnerIn(netns().server);
    const spent = new Map<string, number[]>();
    let phase = 'setup';
    const runner: Runner = async (argv, options) => {
      const result = await inner(argv, options);
      const key = `${phase}: ${commandKey(argv)}`;
      spent.set(key, [...(spent.get(key) ?? []), result.durationMs]);
      return result;
    };
    const backend = subject.newBackend(runner);
    const spec: RuleSpec = { port: 60800, family: 'v4', source: '0.0.0.0/0' };
    for (const existing of [0, 100]) {
      await subject.reset();
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
        `${subject.label}, ${existing} rules of ours: allow ${median(totals.allow).toFixed(1)} ms, ` +
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
}
