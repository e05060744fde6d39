// moshwall as users run it: the .deb (`npm run build:deb`) installed by `apt-get install ./moshwall_*.deb`
// in a booted Debian 12 guest with systemd as PID 1 (_guest.ts), on each firewall as its own service
// (UFW with default deny, Debian's nftables.service with an admin nftables.conf, the real firewalld).
// A real mosh client outside the guest connects through the shim; the journal, doctor, a firewall
// restart under a live session, reboots, a package upgrade and a mosh reinstall under a live session,
// `systemctl stop` with each on_stop, and `apt-get purge` (firewall, /etc and /usr/local compared with
// what they were before the install). Every figure is printed as a diagnostic and in a summary line.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { buildDeb, VERSION } from './_deb.ts';
import { LabError, type Result, runOk, type Started } from './_exec.ts';
import { labPaths } from './_files.ts';
import { createGuest, GUEST_V4, type Guest, type GuestFirewall, guestImage } from './_guest.ts';
import { startMoshClient } from './_mosh-client.ts';
import { pollFor, waitUntil } from './_poll.ts';
import { tcpListening, udpArrivals } from './_procfs.ts';
import { labSkipReason } from './lab.ts';

const UDP_SCRIPT = fileURLToPath(new URL('./fixtures/udp.mjs', import.meta.url));
/** The guest's login user (the guest's own passwd: no name of this machine's is involved). */
const USER = 'mwguest';
const UPGRADE_VERSION = `${VERSION}+guest1`;
/** What each guest restarts or reloads under a live session (the issue's list). */
const FIREWALL_RESTARTS: Record<GuestFirewall, string[][]> = {
  ufw: [
    ['systemctl', 'restart', 'ufw'],
    ['ufw', 'reload'],
  ],
  nftables: [['systemctl', 'restart', 'nftables']],
  firewalld: [['systemctl', 'reload', 'firewalld']],
};
/** Doctor warnings about this machine's kernel, which no guest can change (README: security model). */
const KERNEL_WIDE_WARNINGS = new Set(['ptrace', 'io_uring']);

let debDir = '';
let deb = '';
let upgradeDeb = '';
let imageTar = '';
const summary: string[] = [];

/** A copy of `source` whose control file says `version` (the same files: a second build, higher version). */
async function rebuildWithVersion(source: string, version: string, outDir: string): Promise<string> {
  const tree = join(outDir, 'upgrade-tree');
  await runOk(['dpkg-deb', '-R', source, tree]);
  const control = join(tree, 'DEBIAN', 'control');
  const text = readFileSync(control, 'utf8').replace(/^Version: .*$/m, `Version: ${version}`);
  await runOk(['tee', control], { input: text });
  const out = join(outDir, `moshwall_${version}_all.deb`);
  await runOk(['dpkg-deb', '--root-owner-group', '-Zgzip', '-b', tree, out]);
  rmSync(tree, { recursive: true, force: true });
  return out;
}

before(async () => {
  const image = await guestImage();
  imageTar = image.tar;
  summary.push(`guest image ${image.builtNow ? 'built' : 'cached'} in ${(image.ms / 1000).toFixed(1)} s`);
  debDir = mkdtempSync(join(tmpdir(), 'moshwall-guest-debs-'));
  deb = await buildDeb(debDir);
  upgradeDeb = await rebuildWithVersion(deb, UPGRADE_VERSION, debDir);
});

after(() => {
  if (debDir !== '') rmSync(debDir, { recursive: true, force: true });
  console.log(`# guest-systemd figures: ${summary.join('; ')}`);
});

/** ssh argv from the client side to the guest as USER, with the lab key. */
function sshArgv(guest: Guest, remote: string[]): string[] {
  return [
    ...['ssh', '-F', '/dev/null', '-i', labPaths(guest.dir).clientKey, '-o', 'IdentitiesOnly=yes'],
    ...['-o', 'IdentityAgent=none', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no'],
    ...['-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR', '-o', 'ConnectTimeout=5'],
    `${USER}@${GUEST_V4}`,
    '--',
    ...remote,
  ];
}

/**
 * A mosh-server started over ssh as mosh starts it (`mosh-server new -s`, through the shim) with no
 * client: it holds its port for 60 s waiting for one. Returns the port of its MOSH CONNECT line.
 */
async function idleSession(guest: Guest): Promise<number> {
  const result = await guest.client(sshArgv(guest, ['mosh-server', 'new', '-s', '-l', 'LANG=C.UTF-8']), {
    timeoutMs: 20_000,
  });
  const port = /^MOSH CONNECT (\d+) /m.exec(result.stdout)?.[1];
  if (result.exitCode !== 0 || port === undefined)
    throw new LabError(`mosh-server over ssh: ${shown(result)}`);
  return Number(port);
}

/** Datagrams from the client side to `port` for `ms`: how many were sent, how many got past the firewall. */
async function stream(guest: Guest, port: number, ms: number): Promise<{ sent: number; arrived: number }> {
  const before = udpArrivals(guest.pid1(), 'v4');
  // It ends itself after `ms` (a SIGTERM that early could come before its handler is in).
  const result = await guest.client(
    [process.execPath, UDP_SCRIPT, 'stream', GUEST_V4, String(port), String(ms)],
    {
      timeoutMs: ms + 10_000,
    },
  );
  await sleep(50);
  return { sent: sentCount(result), arrived: udpArrivals(guest.pid1(), 'v4') - before };
}

/** The "sent N" line of udp.mjs stream. */
function sentCount(result: Result): number {
  const sent = /^sent (\d+)$/m.exec(result.stdout)?.[1];
  if (sent === undefined) throw new LabError(`udp.mjs stream printed no count: ${shown(result)}`);
  return Number(sent);
}

/** A stream started in the background; stop() ends it (SIGTERM) and counts as stream() does. */
function backgroundStream(
  guest: Guest,
  port: number,
): { stop(): Promise<{ sent: number; arrived: number }> } {
  const before = udpArrivals(guest.pid1(), 'v4');
  const started: Started = guest.startClient([
    process.execPath,
    UDP_SCRIPT,
    'stream',
    GUEST_V4,
    String(port),
    '300000',
  ]);
  return {
    async stop() {
      started.child.kill('SIGTERM');
      const result = await started.done;
      await sleep(50);
      return { sent: sentCount(result), arrived: udpArrivals(guest.pid1(), 'v4') - before };
    },
  };
}

/**
 * Runs `command` in the guest while datagrams stream to `port` every 10 ms, and watches them arrive
 * (every 2 ms) from the command's start for at least 3 s after it returned (some reloads are
 * asynchronous, so the command's return says little), until they have flowed without a gap for 1 s.
 * Returns how long the command took, the datagrams lost, and the longest silence: the time the port was
 * closed (~10 ms when it never was), with when it ended, counted from the command's start.
 */
async function underStream(
  guest: Guest,
  port: number,
  command: string[],
): Promise<{ commandMs: number; lost: number; closedMs: number; backAtMs: number; cameBack: boolean }> {
  const streaming = backgroundStream(guest, port);
  const arrivals: number[] = [];
  let last = udpArrivals(guest.pid1(), 'v4');
  const sample = () => {
    const now = udpArrivals(guest.pid1(), 'v4');
    if (now > last) arrivals.push(performance.now());
    last = now;
  };
  let timer: NodeJS.Timeout | undefined;
  let begun = 0;
  let commandMs = 0;
  let cameBack = false;
  let failure: unknown;
  try {
    await sleep(200);
    begun = performance.now();
    timer = setInterval(sample, 2);
    await guest.runOk(command, { timeoutMs: 60_000 });
    const returned = performance.now();
    commandMs = returned - begun;
    // Some reloads act after the command returned (firewalld's is asynchronous): watch 3 s at least,
    // then until datagrams have flowed without a gap for 1 s.
    cameBack = await waitUntil(
      () => {
        const now = performance.now();
        const last = arrivals.at(-1) ?? 0;
        return now - returned > 3000 && now - last < 100 && now - flowingSince(arrivals, begun) > 1000;
      },
      15_000,
      20,
    );
  } catch (error) {
    failure = error;
  }
  clearInterval(timer);
  const counts = await streaming.stop();
  if (failure !== undefined) throw failure;
  const silence = silenceEnd(arrivals, begun);
  return {
    commandMs,
    lost: counts.sent - counts.arrived,
    closedMs: silence.ms,
    backAtMs: silence.at - begun,
    cameBack,
  };
}

/** When the current run of arrivals without a gap over 50 ms began. */
function flowingSince(arrivals: number[], begun: number): number {
  let since = begun;
  for (let index = 1; index < arrivals.length; index += 1) {
    if ((arrivals[index] ?? 0) - (arrivals[index - 1] ?? 0) > 50) since = arrivals[index] ?? since;
  }
  return since;
}

/** The longest gap between consecutive arrivals (from `begun`): its length and when it ended. */
function silenceEnd(arrivals: number[], begun: number): { ms: number; at: number } {
  let longest = { ms: 0, at: begun };
  let previous = begun;
  for (const at of arrivals) {
    if (at - previous > longest.ms) longest = { ms: at - previous, at };
    previous = at;
  }
  return longest;
}

/** Waits until datagrams to `port` get through (a 100 ms stream, all arrived); false after `ms`. */
async function waitOpen(guest: Guest, port: number, ms = 10_000): Promise<boolean> {
  return waitUntil(
    async () => {
      const { sent, arrived } = await stream(guest, port, 100);
      return sent > 0 && arrived === sent;
    },
    ms,
    10,
  );
}

/** Waits until no datagram to `port` gets past the firewall (arrived 0); resolves with the ms it took. */
async function waitClosed(guest: Guest, port: number, ms = 10_000): Promise<number | undefined> {
  const begun = performance.now();
  const closed = await waitUntil(async () => (await stream(guest, port, 100)).arrived === 0, ms, 10);
  return closed ? performance.now() - begun : undefined;
}

/** The daemon's journal lines (message text only). */
async function journal(guest: Guest): Promise<string> {
  return (await guest.runOk(['journalctl', '-u', 'moshwall', '-o', 'cat', '--no-pager'])).stdout;
}

/** Runs `action`, then waits until the journal has one more line matching `pattern` than before. */
async function afterJournalLine(
  guest: Guest,
  pattern: RegExp,
  action: () => Promise<unknown>,
): Promise<void> {
  const count = async () => [...(await journal(guest)).matchAll(pattern)].length;
  const before = await count();
  await action();
  assert.ok(await waitUntil(async () => (await count()) > before, 15_000, 50), await journal(guest));
}

/** Asks the daemon in the guest for a ping over its socket, with the guest's node: true when it answers. */
async function daemonAnswers(guest: Guest): Promise<boolean> {
  const script = [
    "const socket = require('node:net').connect(process.argv[1]);",
    "let reply = '';",
    'socket.on(\'connect\', () => socket.write(\'{"op":"ping"}\\n\'));',
    "socket.on('data', (chunk) => { reply += chunk; if (reply.includes('\\n')) process.exit(reply.startsWith('{\"ok\":true') ? 0 : 1); });",
    "socket.on('error', () => process.exit(1));",
    'setTimeout(() => process.exit(1), 2000);',
  ].join(' ');
  const result = await guest.run(['node', '-e', script, '/run/moshwall/moshwall.sock'], {
    timeoutMs: 10_000,
  });
  return result.exitCode === 0;
}

/**
 * `systemctl <verb> moshwall`, then waits until the daemon answers on its socket: the unit is
 * Type=simple, so systemctl returns before the new daemon listens, and a session started in between
 * gets its port from the daemon's poll instead of before MOSH CONNECT (the shim says so).
 */
async function daemonRestarted(guest: Guest, verb: 'restart' | 'start' = 'restart'): Promise<void> {
  await guest.runOk(['systemctl', verb, 'moshwall']);
  assert.ok(
    await waitUntil(() => daemonAnswers(guest), 15_000, 100),
    `the daemon answers no ping after systemctl ${verb}:\n${await journal(guest)}`,
  );
}

/** Output of a command for assertion messages. */
function shown(result: Result): string {
  return `exit ${result.exitCode}\n${result.stdout.slice(-3000)}\n${result.stderr.slice(-3000)}`;
}

/** The guest's firewall as its tools print it, minus counters and timestamps. */
async function firewallState(guest: Guest, firewall: GuestFirewall): Promise<string> {
  const parts: string[] = [];
  if (firewall === 'ufw') {
    for (const tool of ['iptables-save', 'ip6tables-save']) {
      const text = (await guest.runOk([tool])).stdout;
      parts.push(chainsInOrder(text));
    }
    parts.push((await guest.runOk(['ipset', '-n', 'list'])).stdout);
  } else {
    parts.push((await guest.runOk(['nft', 'list', 'ruleset'])).stdout);
  }
  return parts.join('\n');
}

/**
 * iptables-save text without comments, counters and UFW's logging rules, each table's chains sorted by name (rules keep
 * their order within a chain): iptables-nft lists chains in the order they were made, which a UFW
 * restart changes without changing a rule.
 */
function chainsInOrder(text: string): string {
  const chainOf = (line: string) =>
    line.startsWith(':')
      ? `0 ${line.split(' ')[0]}`
      : line.startsWith('-A ')
        ? `1 ${line.split(' ')[1]}`
        : '';
  const out: string[] = [];
  let table: string[] = [];
  const flush = () => {
    out.push(
      ...table
        .map((line, index) => ({ line, index }))
        .sort((a, b) => chainOf(a.line).localeCompare(chainOf(b.line)) || a.index - b.index)
        .map(({ line }) => line),
    );
    table = [];
  };
  for (const raw of text.split('\n')) {
    // UFW's logging rules: a `ufw reload` adds them, UFW's start at boot here does not.
    if (raw.startsWith('#') || /^-A ufw6?-(after-)?logging-/.test(raw)) continue;
    const line = raw.replace(/\[\d+:\d+\]/g, '[0:0]');
    if (line.startsWith('*') || line === 'COMMIT') {
      flush();
      out.push(line);
    } else table.push(line);
  }
  flush();
  return out.join('\n');
}

/** Every path under `dirs` of the guest with type, mode, owner and content hash (or link target). */
function treeState(guest: Guest, dirs: string[]): string[] {
  const entries: string[] = [];
  const walk = (path: string) => {
    const here = join(guest.root, path);
    const facts = lstatSync(here);
    let what = (facts.mode & 0o7777).toString(8);
    if (facts.isSymbolicLink()) what = `-> ${readlinkSync(here)}`;
    else if (facts.isFile())
      what += ` ${createHash('sha256').update(readFileSync(here)).digest('hex').slice(0, 16)}`;
    entries.push(`${path} ${facts.uid}:${facts.gid} ${what}`);
    if (facts.isDirectory()) for (const name of readdirSync(here).sort()) walk(`${path}/${name}`);
  };
  for (const dir of dirs) walk(dir);
  return entries;
}

/** Lines in one listing and not the other, for an assertion message. */
function difference(before: string[], now: string[]): string {
  const was = new Set(before);
  const is = new Set(now);
  return [
    ...before.filter((line) => !is.has(line)).map((line) => `- ${line}`),
    ...now.filter((line) => !was.has(line)).map((line) => `+ ${line}`),
  ].join('\n');
}

/** Sets `key = value` in the guest's /etc/moshwall/moshwall.toml (replacing the line, or appending it). */
function setConfig(guest: Guest, key: string, value: string): void {
  const path = join(guest.root, 'etc/moshwall/moshwall.toml');
  const text = readFileSync(path, 'utf8');
  const line = `${key} = ${value}`;
  const pattern = new RegExp(`^#?\\s*${key} = .*$`, 'm');
  guest.writeFile(
    '/etc/moshwall/moshwall.toml',
    pattern.test(text) ? text.replace(pattern, line) : `${text}\n${line}\n`,
    0o644,
  );
}

for (const firewall of ['ufw', 'nftables', 'firewalld'] as const) {
  describe(`the .deb in a booted Debian 12 guest (systemd PID 1) on ${firewall}`, {
    skip: labSkipReason(),
  }, () => {
    let guest: Guest | undefined;
    let firewallBefore = '';
    let treeBefore: string[] = [];
    const figures: string[] = [];
    const theGuest = (): Guest => {
      assert.ok(guest, 'the guest did not boot in before()');
      return guest;
    };

    before(async () => {
      guest = await createGuest(imageTar, firewall);
      const boot = await guest.boot();
      figures.push(`boot ${(boot.ms / 1000).toFixed(1)} s (${boot.state})`);
      assert.deepEqual(boot.failed, [], `units failed at boot: ${boot.failed.join(', ')}`);
      if (firewall === 'ufw') {
        await guest.runOk(['ufw', 'allow', '22/tcp'], { env: { LANG: 'C' } });
        // As UFW loads its files at boot (`ufw allow` alone leaves some of user6.rules out until then).
        await guest.runOk(['ufw', 'reload'], { env: { LANG: 'C' } });
      }
      await guest.runOk(['useradd', '--create-home', '--shell', '/bin/bash', '--user-group', USER]);
      const key = labPaths(guest.dir).clientKey;
      mkdirSync(join(guest.dir, 'ssh'), { mode: 0o700 });
      await runOk(['ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-C', 'moshwall-guest-test', '-f', key]);
      guest.writeFile(`/home/${USER}/.ssh/authorized_keys`, readFileSync(`${key}.pub`), 0o600);
      await guest.runOk(['chown', '-R', `${USER}:${USER}`, `/home/${USER}/.ssh`]);
      await guest.runOk(['chmod', '700', `/home/${USER}/.ssh`]);
      const live = guest;
      assert.ok(
        await waitUntil(() => tcpListening(live.pid1(), 22, 'v4'), 10_000),
        'sshd in the guest listens',
      );
      const hello = await guest.client(sshArgv(guest, ['echo', 'hello']), { timeoutMs: 20_000 });
      assert.equal(hello.stdout.trim(), 'hello', shown(hello));
      firewallBefore = await firewallState(guest, firewall);
      treeBefore = treeState(guest, ['/etc', '/usr/local']);
      guest.writeFile(`/root/${deb.split('/').at(-1)}`, readFileSync(deb), 0o644);
      guest.writeFile(`/root/${upgradeDeb.split('/').at(-1)}`, readFileSync(upgradeDeb), 0o644);
    });

    after(async () => {
      summary.push(`${firewall}: ${figures.join(', ')}`);
      await guest?.destroy();
    });

    test('apt-get install ./moshwall_*.deb: the service runs under its unit, sandboxed as shipped; a real mosh session connects through the shim; the journal says open and close; doctor finds nothing to fix', async (t) => {
      const g = theGuest();
      const begun = performance.now();
      const install = await g.run(
        ['apt-get', 'install', '-y', '--no-install-recommends', `/root/${deb.split('/').at(-1)}`],
        {
          timeoutMs: 120_000,
        },
      );
      assert.equal(install.exitCode, 0, shown(install));
      figures.push(`install ${((performance.now() - begun) / 1000).toFixed(1)} s`);
      if (firewall !== 'ufw') {
        // The package's config names UFW; an admin on another firewall says which (then restarts).
        setConfig(g, 'backend', `"${firewall}"`);
        await daemonRestarted(g);
      }
      assert.ok(
        await waitUntil(
          async () => (await g.run(['systemctl', 'is-active', 'moshwall'])).stdout.trim() === 'active',
          10_000,
        ),
        shown(await g.run(['systemctl', 'status', 'moshwall', '--no-pager'])),
      );

      // The sandboxing of the unit as the kernel applies it to the running daemon.
      const mainPid = (
        await g.runOk(['systemctl', 'show', '-p', 'MainPID', '--value', 'moshwall'])
      ).stdout.trim();
      const status = (await g.runOk(['cat', `/proc/${mainPid}/status`])).stdout;
      assert.match(status, /^NoNewPrivs:\s+1$/m);
      assert.match(
        status,
        /^Seccomp:\s+2$/m,
        'SystemCallArchitectures=native and friends install a seccomp filter',
      );
      // CAP_NET_ADMIN(12) CAP_NET_RAW(13) CAP_SYS_PTRACE(19) CAP_SYS_ADMIN(21) CAP_DAC_READ_SEARCH(2) CAP_SYS_MODULE(16)
      // (nspawn keeps CAP_SYS_MODULE from the whole guest, so the daemon gets the rest of its set.)
      const capBnd = (text: string) => BigInt(`0x${/^CapBnd:\s+([0-9a-f]+)$/m.exec(text)?.[1] ?? '0'}`);
      const unitSet = [12, 13, 19, 21, 2, 16].reduce((mask, bit) => mask | (1n << BigInt(bit)), 0n);
      const guestSet = capBnd((await g.runOk(['cat', '/proc/1/status'])).stdout);
      const bounding = capBnd(status);
      assert.equal(bounding, unitSet & guestSet, `CapBnd ${bounding.toString(16)}`);
      const mounts = (await g.runOk(['cat', `/proc/${mainPid}/mountinfo`])).stdout;
      assert.match(mounts, /^\S+ \S+ \S+ \S+ \/ ro[, ]/m, 'ProtectSystem=strict: / read-only for the daemon');
      assert.match(mounts, /^\S+ \S+ \S+ \S+ \/etc\/ufw rw[, ]/m, 'ReadWritePaths=/etc/ufw');

      // A real mosh session from outside the guest, through the shim.
      const client = await startMoshClient(
        { dir: g.dir, server: { v4: GUEST_V4 }, runClient: (argv, opts) => g.client(argv, opts) },
        { user: USER },
      );
      let port = 0;
      try {
        const ready = await client.waitReady(20_000);
        figures.push(`mosh connect ${(ready - client.launchedAt).toFixed(0)} ms`);
        t.diagnostic(`mosh session up in ${(ready - client.launchedAt).toFixed(0)} ms`);
        await client.echo(`hello-${client.nonce}`);
        port = client.serverPort() ?? 0;
        assert.ok(port > 0, 'mosh-client names its server port');
        assert.match(await journal(g), new RegExp(`^info request-served port=${port} state=open$`, 'm'));
        await client.press('C-d');
        await client.waitEnded(15_000);
      } finally {
        await client.close();
      }
      const closed = await waitUntil(
        async () => new RegExp(`^info closed port=${port}\\b`, 'm').test(await journal(g)),
        15_000,
        100,
      );
      const text = await journal(g);
      assert.ok(closed, text);
      assert.match(text, new RegExp(`^info opened port=${port}\\b`, 'm'));
      t.diagnostic(
        text
          .split('\n')
          .filter((line) => line.includes(`port=${port}`))
          .join('\n'),
      );

      const doctor = await g.run(['moshwall', 'doctor']);
      t.diagnostic(doctor.stdout);
      const problems = doctor.stdout
        .split('\n')
        .filter((line) => /^(FAIL|WARN)\s/.test(line))
        .filter((line) => !KERNEL_WIDE_WARNINGS.has(line.split(/\s+/)[1] ?? ''));
      assert.deepEqual(problems, [], doctor.stdout);
      assert.equal(doctor.exitCode, 0, shown(doctor));
    });

    test(`${FIREWALL_RESTARTS[firewall].map((argv) => argv.join(' ')).join(' / ')} under a live session: its port comes back`, async (t) => {
      const g = theGuest();
      const port = await idleSession(g);
      const open = await stream(g, port, 300);
      assert.equal(open.arrived, open.sent, `port ${port} is open before the restart`);
      for (const command of FIREWALL_RESTARTS[firewall]) {
        const { commandMs, lost, closedMs, backAtMs, cameBack } = await underStream(g, port, command);
        const line = `${command.join(' ')} (returns in ${commandMs.toFixed(0)} ms): port closed ${closedMs.toFixed(0)} ms (${lost} datagrams lost), open again ${backAtMs.toFixed(0)} ms after the command started`;
        t.diagnostic(line);
        figures.push(line);
        assert.ok(
          cameBack,
          `port ${port} back after ${command.join(' ')}:\n${(await journal(g)).split('\n').slice(-15).join('\n')}`,
        );
        const still = await stream(g, port, 300);
        assert.equal(still.arrived, still.sent, `port ${port} open after ${command.join(' ')}`);
      }
    });

    if (firewall === 'ufw') {
      test('upgrade to a higher version under a live session: its port never closes; a mosh reinstall under a live session (exe "(deleted)") keeps it', async (t) => {
        const g = theGuest();
        const port = await idleSession(g);
        const streaming = backgroundStream(g, port);
        const begun = performance.now();
        const upgrade = await g.run(
          ['apt-get', 'install', '-y', '--no-install-recommends', `/root/${upgradeDeb.split('/').at(-1)}`],
          {
            timeoutMs: 120_000,
          },
        );
        const upgradeMs = performance.now() - begun;
        await sleep(1500);
        const during = await streaming.stop();
        assert.equal(upgrade.exitCode, 0, shown(upgrade));
        const version = (await g.runOk(['dpkg-query', '-W', `-f=\${Version}`, 'moshwall'])).stdout;
        assert.equal(version, UPGRADE_VERSION);
        assert.equal((await g.run(['systemctl', 'is-active', 'moshwall'])).stdout.trim(), 'active');
        const lost = during.sent - during.arrived;
        figures.push(
          `upgrade ${(upgradeMs / 1000).toFixed(1)} s, ${during.sent} datagrams every 10 ms, lost ${lost} (gap ${lost * 10} ms)`,
        );
        t.diagnostic(figures.at(-1) ?? '');
        assert.equal(during.arrived, during.sent, 'every datagram sent during the upgrade got through');

        const second = await idleSession(g);
        const server = (await g.runOk(['moshwall', 'status', '--json'])).stdout;
        const pid = (
          JSON.parse(server) as { sessions?: Array<{ port: number; pid: number }> }
        ).sessions?.find((s) => s.port === second)?.pid;
        assert.ok(pid, `status lists the session on ${second}: ${server}`);
        const reinstall = await g.run(['apt-get', 'install', '--reinstall', '-y', '--no-download', 'mosh'], {
          timeoutMs: 120_000,
        });
        assert.equal(reinstall.exitCode, 0, shown(reinstall));
        const exe = (await g.runOk(['readlink', `/proc/${pid}/exe`])).stdout.trim();
        assert.match(exe, / \(deleted\)$/, 'the live mosh-server runs a replaced binary');
        // A full reconcile looks at it again: SIGHUP (logged "reloaded"), then 3 s of datagrams, all through.
        await afterJournalLine(g, /^info reloaded /gm, () => g.runOk(['systemctl', 'reload', 'moshwall']));
        const kept = await stream(g, second, 3000);
        assert.equal(
          kept.arrived,
          kept.sent,
          `port ${second} still open after the reinstall and a full reconcile`,
        );
        assert.doesNotMatch(await journal(g), new RegExp(`^info closed port=${second}\\b`, 'm'));
        figures.push(`mosh reinstall: port kept`);
      });
    }

    test('systemctl stop with on_stop "keep" keeps a live session open; with "flush" closes it and leaves the firewall as before the install; start opens it again', async () => {
      const g = theGuest();
      const port = await idleSession(g);
      await g.runOk(['systemctl', 'stop', 'moshwall']);
      const kept = await stream(g, port, 300);
      assert.equal(
        kept.arrived,
        kept.sent,
        'on_stop = "keep": the port stays open while the daemon is stopped',
      );
      setConfig(g, 'on_stop', '"flush"');
      // The daemon is up (it logs "starting" once its signal handlers are in) and has the live session;
      // then it stops with a flush.
      await afterJournalLine(g, /^info starting /gm, () => g.runOk(['systemctl', 'start', 'moshwall']));
      assert.ok(await waitOpen(g, port), 'the restarted daemon keeps the live session open');
      await g.runOk(['systemctl', 'stop', 'moshwall']);
      const flushed = await stream(g, port, 300);
      assert.equal(
        flushed.arrived,
        0,
        `on_stop = "flush": the port is closed once the daemon stopped:\n${(await journal(g)).split('\n').slice(-12).join('\n')}`,
      );
      const now = await firewallState(g, firewall);
      assert.ok(
        now === firewallBefore,
        `after the flush, the firewall is what it was before the install:\n${difference(firewallBefore.split('\n'), now.split('\n'))}`,
      );
      await g.runOk(['systemctl', 'start', 'moshwall']);
      assert.ok(await waitOpen(g, port), 'started again, the daemon opens the live session again');
      setConfig(g, 'on_stop', '"keep"');
      await daemonRestarted(g);
    });

    test('reboot with rules of ours in place: nothing stale is open after boot; a session started after boot connects at once', async (t) => {
      const g = theGuest();
      if (firewall === 'ufw') {
        // Classic rules live in /etc/ufw and come back with UFW at boot: the daemon must take them out.
        setConfig(g, 'ufw_fast_path', '"off"');
        await daemonRestarted(g);
      }
      for (const mode of firewall === 'ufw' ? ['off', 'auto'] : ['default']) {
        if (mode === 'auto') {
          setConfig(g, 'ufw_fast_path', '"auto"');
          await daemonRestarted(g);
        }
        const port = await idleSession(g);
        const open = await stream(g, port, 300);
        assert.equal(open.arrived, open.sent, `port ${port} open before the reboot`);
        const bootIdBefore = (await g.runOk(['cat', '/proc/sys/kernel/random/boot_id'])).stdout.trim();
        const boot = await g.reboot();
        const bootDone = performance.now();
        assert.notEqual(boot.bootId, bootIdBefore, 'a new boot');
        assert.deepEqual(boot.failed, [], `units failed at boot: ${boot.failed.join(', ')}`);
        if (firewall === 'ufw' && mode === 'auto') {
          const hookAt = await pollFor(
            async () =>
              (await g.runOk(['iptables', '-S', 'ufw-after-input'])).stdout.includes('moshwall-runtime')
                ? performance.now()
                : undefined,
            10_000,
            10,
          );
          assert.ok(hookAt !== undefined, "the fast path's rules come into UFW's chain before any session");
          figures.push(
            `fast-path rules in ufw-after-input ${(hookAt - bootDone).toFixed(0)} ms after boot finished`,
          );
        }
        const closedIn = await waitClosed(g, port);
        assert.ok(closedIn !== undefined, `nothing passes to ${port} after the reboot (no stale rule)`);
        figures.push(
          `${mode === 'off' ? 'stale classic rule gone' : 'nothing open'} by ${(performance.now() - bootDone).toFixed(0)} ms after boot finished`,
        );
        if (mode === 'off') {
          const rules = readFileSync(join(g.root, 'etc/ufw/user.rules'), 'utf8');
          assert.doesNotMatch(
            rules,
            new RegExp(`--dport ${port}\\b`),
            'the daemon took the stale rule out of user.rules',
          );
        }
        const client = await startMoshClient(
          { dir: g.dir, server: { v4: GUEST_V4 }, runClient: (argv, opts) => g.client(argv, opts) },
          { user: USER },
        );
        try {
          const ready = await client.waitReady(20_000);
          const line = `after reboot (${firewall}${mode === 'default' ? '' : ` fast path ${mode}`}): boot ${(boot.ms / 1000).toFixed(1)} s, mosh connect ${(ready - client.launchedAt).toFixed(0)} ms`;
          figures.push(line);
          t.diagnostic(line);
          const served = client.serverPort() ?? 0;
          assert.match(await journal(g), new RegExp(`^info request-served port=${served} state=open$`, 'm'));
          await client.echo(`after-boot-${client.nonce}`);
        } finally {
          await client.close();
        }
      }
    });

    test('apt-get purge: the firewall, /etc and /usr/local are what they were before the install', async () => {
      const g = theGuest();
      const purge = await g.run(['apt-get', 'purge', '-y', 'moshwall'], { timeoutMs: 120_000 });
      assert.equal(purge.exitCode, 0, shown(purge));
      const now = await firewallState(g, firewall);
      assert.ok(now === firewallBefore, difference(firewallBefore.split('\n'), now.split('\n')));
      const tree = treeState(g, ['/etc', '/usr/local']);
      assert.deepEqual(tree, treeBefore, difference(treeBefore, tree));
    });
  });
}
