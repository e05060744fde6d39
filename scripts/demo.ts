// `npm run demo` (as root): moshwall's daemon and mosh-server shim at work, end to end, in a throwaway
// lab. It builds two network namespaces (a client, and a server host with real sshd and a real UFW that
// denies everything but ssh), starts `moshwall daemon` there and installs the shim as
// /usr/local/bin/mosh-server (inside the lab only), connects a real mosh session as the lab user alice
// from the client in a terminal (tmux), runs a command in it, ends it, and prints what happened when,
// from what it saw: UDP sockets in the server's /proc, moshwall's ipset (UFW's default fast path: the
// port is a set member, matched from UFW's own chain; no UFW rule is written), the daemon's log, alice's
// screen.
// The machine's own firewall, /etc and /usr/local are never touched; everything goes away at the end,
// on an error, or on Ctrl-C (the lab's own signal handlers tear it down).
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Daemon, installShim, startDaemon } from '../test/e2e/_daemon.ts';
import { type MoshClient, missingClientTools, startMoshClient } from '../test/e2e/_mosh-client.ts';
import { type PortWatch, watchPorts } from '../test/e2e/_observe.ts';
import { createLab, type Lab, LabError, labSkipReason, requireRoot } from '../test/e2e/lab.ts';

const CLI = fileURLToPath(new URL('../dist/moshwall.js', import.meta.url));
const CONFIG = 'backend = "ufw"\nport_range = "60000:61000"\n';
const STEP_MS = 15_000;

const say = (text = '') => process.stdout.write(`${text}\n`);
const indent = (text: string, prefix = '    ') =>
  text
    .trimEnd()
    .split('\n')
    .map((line) => `${prefix}${line}`.trimEnd())
    .join('\n');

/** When each port became a member of moshwall's v4 set and stopped being one (`ipset save`, every 20 ms). */
function watchMembers(lab: Lab): {
  first(port: number): number | undefined;
  gone(port: number): number | undefined;
  stop(): void;
} {
  const added = new Map<number, number>();
  const removed = new Map<number, number>();
  let members = new Set<number>();
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      const saved = await lab.runServer(['ipset', 'save', 'moshwall-any4']);
      const at = performance.now();
      const now = new Set(
        [...saved.stdout.matchAll(/^add moshwall-any4 (\d+)$/gm)].map((match) => Number(match[1])),
      );
      for (const port of now) if (!members.has(port) && !added.has(port)) added.set(port, at);
      for (const port of members) if (!now.has(port) && !removed.has(port)) removed.set(port, at);
      members = now;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const running = loop();
  return {
    first: (port) => added.get(port),
    gone: (port) => removed.get(port),
    stop: () => {
      stopped = true;
      void running;
    },
  };
}

/** `ufw status` of the lab's server host, as its admin would see it. */
async function ufwStatus(lab: Lab): Promise<string> {
  const result = await lab.ufw(['status']);
  return result.exitCode === 0 ? result.stdout : `ufw status failed: ${result.stderr}`;
}

/** The first daemon log line matching `pattern` from index `from` on, or a LabError with the log. */
async function daemonLine(daemon: Daemon, pattern: RegExp, from: number): Promise<number> {
  return (await daemon.waitForLine(pattern, { from, timeoutMs: STEP_MS })).at;
}

/** Milliseconds as "+1234 ms" or seconds, for the timeline. */
function ms(value: number): string {
  return value >= 10_000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`;
}

/** The demo proper; the caller tears the lab down. */
async function demo(lab: Lab, watch: { current?: PortWatch }): Promise<void> {
  say(`Lab up in ${lab.dir}`);
  say(
    `  client ${lab.client.v4}  ── veth ──  server ${lab.server.v4}: sshd, UFW default deny (only 22/tcp open)`,
  );
  say('');
  say('UFW on the server, before:');
  say(indent(await ufwStatus(lab)));
  say('');

  const daemon = await startDaemon(lab, CONFIG);
  await installShim(lab);
  say(`moshwall daemon running in the server host (pid ${daemon.pid}), polling /proc/net/udp every 250 ms;`);
  say('shim installed there as /usr/local/bin/mosh-server (ssh finds it before /usr/bin/mosh-server).');
  say('');

  const nonce = randomBytes(4).toString('hex');
  const readyText = `READY-${nonce}`;
  const ports = watchPorts(lab);
  watch.current = ports;
  const members = watchMembers(lab);
  const logFrom = daemon.lines().length;
  say(`Client: mosh alice@${lab.server.v4} (real ssh, then mosh-client over UDP), in a terminal...`);
  const client: MoshClient = await startMoshClient(lab, {
    user: 'alice',
    readyText,
    command: ['sh', '-c', `echo ${readyText}; exec sh -i`],
  });
  const t0 = client.launchedAt;
  const connectedAt = await client.waitReady(STEP_MS, 10);
  const port = client.serverPort();
  if (port === undefined) throw new LabError('mosh-client did not report its server port');
  const boundAt = ports.first('bound', port, t0 - 1)?.at;
  const ruleAt = await daemonLine(daemon, new RegExp(`^info opened port=${port} `), logFrom);
  const servedAt = await daemonLine(daemon, new RegExp(`^info request-served port=${port} `), logFrom);
  say(`  connected: session on UDP port ${port}.`);
  say('');
  say("UFW on the server, during the session (no UFW rule: the port is a member of moshwall's set):");
  say(indent(await ufwStatus(lab)));
  const set = await lab.runServer(['ipset', 'list', 'moshwall-any4']);
  say(
    indent(
      set.stdout
        .split('\n')
        .filter((line) => /^(Name|Members|\d+)/.test(line))
        .join('\n'),
    ),
  );
  const chain = await lab.runServer(['iptables', '-S', 'ufw-after-input']);
  say(
    indent(
      chain.stdout
        .split('\n')
        .filter((line) => line.includes('moshwall'))
        .join('\n'),
    ),
  );
  say('');

  const command = 'echo "hello from $(id -un) on $(uname -s), shell $$"';
  say(`alice types: ${command}`);
  await client.type(command);
  await client.press('Enter');
  await client.waitForText(/hello from alice on \w+, shell \d+/, STEP_MS);
  const ranAt = performance.now();
  say("alice's screen:");
  const screen = (await client.screen())
    .split('\n')
    .filter((line) => line.trim() !== '')
    .slice(-4)
    .join('\n');
  say(indent(screen, '  | '));
  say('');

  say('alice types: exit');
  const exitAt = performance.now();
  await client.type('exit');
  await client.press('Enter');
  await client.waitForText('[mosh is exiting.]', STEP_MS);
  const unbound = await ports.waitFor('unbound', port, exitAt, STEP_MS);
  const closedAt = await daemonLine(daemon, new RegExp(`^info closed port=${port} `), logFrom);
  const memberGoneBy = performance.now() + STEP_MS;
  while (members.gone(port) === undefined && performance.now() < memberGoneBy)
    await new Promise((resolve) => setTimeout(resolve, 20));
  members.stop();
  ports.stop();
  await client.close();
  say('');
  say('UFW on the server, after:');
  say(indent(await ufwStatus(lab)));
  say('');

  const endedAt = unbound?.at ?? exitAt;
  const rows: Array<[number | undefined, string, string]> = [
    [t0, `mosh launched on the client (ssh alice@${lab.server.v4}, mosh-server via the shim)`, ''],
    [boundAt, `mosh-server bound UDP ${port}`, "server's /proc/net/udp"],
    [
      ruleAt,
      `rule added: ${port}/udp ALLOW IN from anywhere`,
      `daemon log; +${ms(ruleAt - (boundAt ?? ruleAt))} after the bind`,
    ],
    [members.first(port), `${port} a member of moshwall-any4`, 'ipset save (every 20 ms)'],
    [servedAt, 'shim releases MOSH CONNECT to the client', 'daemon answered the shim'],
    [
      connectedAt,
      "client connected: READY on alice's screen",
      `${((connectedAt - t0) / 1000).toFixed(2)} s after launch`,
    ],
    [ranAt, 'command ran in the session', "alice's screen"],
    [exitAt, 'alice typed exit', ''],
    [endedAt, `session ended: mosh-server's socket on ${port} gone`, "server's /proc/net/udp"],
    [closedAt, `rule removed: ${port}/udp`, `daemon log; +${ms(closedAt - endedAt)} after the end`],
    [members.gone(port), `${port} no longer a member`, 'ipset save (every 20 ms)'],
  ];
  say('Timeline (from launching mosh; every time observed, none assumed):');
  rows.sort(([a], [b]) => (a ?? Number.POSITIVE_INFINITY) - (b ?? Number.POSITIVE_INFINITY));
  for (const [at, what, how] of rows) {
    const when = at === undefined ? '       ?' : `${((at - t0) / 1000).toFixed(3).padStart(7)} s`;
    say(`  ${when}  ${what.padEnd(62)} ${how}`.trimEnd());
  }
  say('');
  const ok = boundAt !== undefined && ruleAt >= boundAt && servedAt >= ruleAt && connectedAt >= servedAt;
  say(
    ok
      ? 'The port was open before MOSH CONNECT reached the client, and closed again once the session ended.'
      : 'Unexpected order of events: see the timeline above.',
  );
  const stopped = await daemon.stop();
  say(`moshwall daemon stopped (exit ${stopped.exitCode}).`);
}

/** Checks, builds the lab, runs the demo, tears down; the exit code. */
async function main(): Promise<number> {
  const notRoot = labSkipReason();
  if (notRoot) {
    process.stderr.write(
      `npm run demo: ${notRoot}.\nRun it as root: sudo npm run demo (or: sudo bash scripts/demo.sh, which also installs what it needs).\n`,
    );
    return 1;
  }
  try {
    requireRoot();
    const missing = missingClientTools();
    if (missing.length > 0) {
      throw new LabError(`${missing.join(', ')} not found (apt-get install tmux mosh)`);
    }
  } catch (error) {
    process.stderr.write(`npm run demo: ${(error as Error).message}\n`);
    return 1;
  }
  if (!existsSync(CLI)) {
    process.stderr.write(
      `npm run demo: ${CLI} is missing; run \`npm run build\` first (npm run demo does)\n`,
    );
    return 1;
  }
  // Printed first; the lab's own handlers (registered by createLab) then tear everything down and exit.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal}: tearing the lab down...\n`);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
  const startedAt = performance.now();
  say('moshwall demo: a real mosh session through a default-deny UFW, opened just in time.');
  say('');
  let lab: Lab | undefined;
  const watch: { current?: PortWatch } = {};
  let code = 0;
  try {
    lab = await createLab();
    await demo(lab, watch);
  } catch (error) {
    process.stderr.write(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}\n`);
    code = 1;
  } finally {
    watch.current?.stop();
    try {
      await lab?.destroy();
      say(`Lab torn down (${((performance.now() - startedAt) / 1000).toFixed(1)} s in all).`);
    } catch (error) {
      process.stderr.write(`lab teardown: ${(error as Error).message}\n`);
      code = 1;
    }
  }
  return code;
}

process.exitCode = await main();
