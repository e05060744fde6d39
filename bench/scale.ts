// What moshwall costs at scale, per backend, each in a lab of its own (test/e2e/lab.ts; the admin firewall
// of each backend is set up inside the lab's namespaces only):
//   changes   one allow and one revoke of one port through the Backend API, timed inside the lab (no
//             nsenter in the figure) with 0, 100 and 1000 rules of ours already there; median and p99
//   converge  `moshwall daemon` running, 1000 genuine sessions started at once: the time until all 1000
//             ports are in the firewall (listed through the backend), and after killing them all, the
//             time until none of ours is left
//   idle      the daemon's CPU (% of one core, utime+stime from /proc/PID/stat) over a window with the
//             1000 sessions live, and its VmRSS and VmHWM (peak) then
//   connect   (set-based backends) a real `mosh` through the admin's default-deny firewall, as
//             bench/connect.ts measures it: wide open vs daemon+shim, and daemon+shim with the 1000 live
//
// The sessions are a tiny C program (bench/fixtures/fake-mosh-server.c) installed root-owned as
// `mosh-server` in a root-owned directory of the lab and run as ten lab users: moshwall judges them with
// the same genuineness check as a real mosh-server (and the bench checks, with `moshwall status`, that it
// counts every one as genuine). A real mosh-server ends itself after 60 s without a client.
//
// Prints the tables and writes them to bench/results/scale.md, keeping the rows there of backends not
// run now (a run replaces only its own backends' rows). Needs root, gcc, and `npm run build` (run
// it as `npm run bench:scale`). Options: --backends ufw,nftables,… (default all profiles), --sessions N
// (1000), --runs N (50), --counts 0,100,1000, --idle-s S (30), --connect-runs N (5; 0 skips it).
// Prints figures; never passes or fails on them.
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { availableParallelism, cpus, loadavg, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBackend } from '../src/backends/select.ts';
import { createUfwBackend } from '../src/backends/ufw.ts';
import { DEFAULT_CONFIG, parseConfig } from '../src/config.ts';
import { ourSpecs } from '../src/engine.ts';
import { type ExecOptions, type Runner, runCommand } from '../src/exec.ts';
import type { Backend } from '../src/firewall.ts';
import {
  type Daemon,
  installShim,
  moshwall,
  removeShim,
  startDaemon,
  waitUntil,
} from '../test/e2e/_daemon.ts';
import { LabError, run } from '../test/e2e/_exec.ts';
import { installLabFastPath, labFastBackend } from '../test/e2e/_fastpath.ts';
import { missingClientTools, startMoshClient } from '../test/e2e/_mosh-client.ts';
import { serverPidsOnPort } from '../test/e2e/_observe.ts';
import { isGone, namespaceOf, statusField } from '../test/e2e/_procfs.ts';
import { createLab, type Lab, type LabOptions, requireRoot, SERVER_V4 } from '../test/e2e/lab.ts';
import { median } from '../test/support/stats.ts';
import { runBench } from './_run.ts';
import type { CountResult, Request } from './_scale-changes.ts';

const RESULTS = fileURLToPath(new URL('./results/scale.md', import.meta.url));
const WORKER = fileURLToPath(new URL('./_scale-changes.ts', import.meta.url));
const FAKE_SOURCE = fileURLToPath(new URL('./fixtures/fake-mosh-server.c', import.meta.url));
/** Where the stand-in mosh-server goes in the lab: root-owned all the way up, as moshwall demands. */
const FAKE_DIR = '/usr/local/lib/moshwall-bench';
const FAKE = `${FAKE_DIR}/mosh-server`;
const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy'];
/**
 * moshwall's range for the bench. The sessions take ports from FIRST_PORT up, above the ports a real
 * mosh-server picks by itself (60001–60999), so that a real `mosh` still finds one with 1000 of them live.
 */
const RANGE = '60000:61999';
const FIRST_PORT = 61000;
const WIDE_NFT_COMMENT = 'bench-wide-open';

/**
 * One backend as the bench sets it up: the admin firewall of the lab, the config lines moshwall gets,
 * how to open the whole range as an admin would, and how to preload rules of ours. Adding a backend is
 * one more entry in PROFILES.
 */
interface Profile {
  name: string;
  /** Ports are elements of a set (one change = one set element), not rules of their own. */
  setBased: boolean;
  /** Config lines beyond port_range and max_sessions_per_user. */
  config: string[];
  /** Turns the lab's stock UFW into this backend's admin firewall (default-deny, ssh allowed). */
  setUp(lab: Lab): Promise<void>;
  /** Opens (or closes again) the whole port range as an admin rule, for the "wide open" connect. */
  wideOpen(lab: Lab, open: boolean): Promise<void>;
  preload: Request['preload'];
  /** At most this many rules per preload call, where one call of 1000 outlasts command_timeout_ms. */
  preloadBatch?: number;
  /** What the report should say of this backend's figures. */
  note?: string;
  /** The backend the bench lists our rules with from outside the lab (default: from the config lines). */
  listing?(lab: Lab): Backend;
  /** At most this many sessions in the converge (and why), where --sessions would take too long. */
  sessionsCap?: { sessions: number; why: string };
  /** Timed runs at a given count when fewer than --runs are used, and why. */
  runsAt?: Record<string, number>;
  /** How the lab is made beyond its users (e.g. a real firewalld instead of UFW). */
  labOptions?: Pick<LabOptions, 'firewall'>;
}

/** Runs argv as root in the lab's server host, or throws with its output. */
async function inLab(lab: Lab, argv: string[], input?: string): Promise<string> {
  const result = await lab.runServer(argv, input === undefined ? {} : { input });
  if (result.exitCode !== 0)
    throw new LabError(
      `${argv.join(' ')} in the lab: exit ${result.exitCode}: ${result.stderr}${result.stdout}`,
    );
  return result.stdout;
}

/** The lab without UFW: ufw disabled there and its tables gone (this namespace only). */
async function dropLabUfw(lab: Lab): Promise<void> {
  await inLab(lab, ['ufw', 'disable']);
  await inLab(lab, ['nft', 'flush', 'ruleset']);
}

const NFT_ADMIN = [
  'flush ruleset',
  'table inet filter {',
  '  chain input {',
  '    type filter hook input priority filter; policy drop;',
  '    ct state established,related accept',
  '    iif "lo" accept',
  '    tcp dport 22 accept',
  '    icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept',
  '  }',
  '}',
  '',
].join('\n');

/** The stock iptables admin firewall: INPUT policy DROP; established, lo, ssh (and ICMPv6) accepted. */
function iptablesAdmin(family: 'v4' | 'v6'): string {
  return [
    '*filter',
    ':INPUT DROP [0:0]',
    ':FORWARD ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    '-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-A INPUT -i lo -j ACCEPT',
    ...(family === 'v6' ? ['-A INPUT -p ipv6-icmp -j ACCEPT'] : []),
    '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT',
    'COMMIT',
    '',
  ].join('\n');
}

/** The iptables profile of one variant (rules per port, in a chain of ours). */
function iptablesProfile(variant: 'nft' | 'legacy'): Profile {
  const wide = ['INPUT', '-p', 'udp', '--dport', RANGE, '-j', 'ACCEPT'];
  return {
    name: `iptables-${variant}`,
    setBased: false,
    config: ['backend = "iptables"', `iptables_variant = "${variant}"`],
    async setUp(lab) {
      await dropLabUfw(lab);
      await inLab(lab, [`iptables-${variant}-restore`, '-w'], iptablesAdmin('v4'));
      await inLab(lab, [`ip6tables-${variant}-restore`, '-w'], iptablesAdmin('v6'));
    },
    async wideOpen(lab, open) {
      await inLab(lab, [`iptables-${variant}`, '-w', open ? '-I' : '-D', ...wide]);
    },
    preload: 'api',
  };
}

const PROFILES: Profile[] = [
  {
    name: 'ufw',
    setBased: false,
    config: ['backend = "ufw"'],
    async setUp() {},
    async wideOpen(lab, open) {
      await inLab(lab, ['ufw', ...(open ? [] : ['delete']), 'allow', `${RANGE}/udp`]);
    },
    preload: 'ufw-rules-file',
    // The backend reads ufw's rules files: those of the lab, through its holder's root.
    listing: (lab) =>
      createUfwBackend({
        runner: labRunner(lab),
        timeoutMs: 30_000,
        rulesDir: lab.serverPath('/etc/ufw'),
        defaultsFile: lab.serverPath('/etc/default/ufw'),
      }),
    // Each ufw run re-reads and rewrites every rule: at 1000 rules one change takes seconds.
    runsAt: { '1000': 20 },
    sessionsCap: {
      sessions: 200,
      why: 'one `ufw allow` / `ufw delete` process per port, each slower the more rules there are (about 0.3 s at 1000): 1000 would take about 5 minutes each way',
    },
  },
  {
    name: 'nftables',
    setBased: true,
    config: ['backend = "nftables"'],
    async setUp(lab) {
      await dropLabUfw(lab);
      await inLab(lab, ['nft', '-f', '-'], NFT_ADMIN);
    },
    async wideOpen(lab, open) {
      if (open) {
        await inLab(lab, [
          'nft',
          'add',
          'rule',
          'inet',
          'filter',
          'input',
          'udp',
          'dport',
          RANGE.replace(':', '-'),
          'accept',
          'comment',
          `"${WIDE_NFT_COMMENT}"`,
        ]);
        return;
      }
      const listing = await inLab(lab, ['nft', '-a', 'list', 'chain', 'inet', 'filter', 'input']);
      const handle = new RegExp(`comment "${WIDE_NFT_COMMENT}" # handle (\\d+)`).exec(listing)?.[1];
      if (handle === undefined) throw new LabError(`the wide-open rule is gone:\n${listing}`);
      await inLab(lab, ['nft', 'delete', 'rule', 'inet', 'filter', 'input', 'handle', handle]);
    },
    preload: 'api',
  },
  iptablesProfile('nft'),
  iptablesProfile('legacy'),
  {
    name: 'ufw-ipset',
    setBased: true,
    config: ['backend = "ufw"', 'ufw_fast_path = "ipset"'],
    // The hook as `moshwall install` adds it: our sets and their match rules in UFW's after chains.
    setUp: installLabFastPath,
    async wideOpen(lab, open) {
      await inLab(lab, ['ufw', ...(open ? [] : ['delete']), 'allow', `${RANGE}/udp`]);
    },
    preload: 'api',
    listing: labFastBackend,
  },
  {
    name: 'firewalld',
    setBased: false,
    config: ['backend = "firewalld"'],
    labOptions: { firewall: 'firewalld' },
    // The lab's firewalld: default zone public (ssh allowed, everything else rejected).
    async setUp() {},
    async wideOpen(lab, open) {
      const ports = `${RANGE.replace(':', '-')}/udp`;
      await inLab(lab, ['firewall-cmd', '--zone=public', `--${open ? 'add' : 'remove'}-port=${ports}`]);
    },
    preload: 'api',
    // One firewall-cmd of N rich rules takes longer per rule the more it holds (300: 3 s, 1000: ~25 s,
    // beyond the default 15 s command_timeout_ms); the daemon's converge lives with that as users get it.
    preloadBatch: 200,
    note: 'the backend sends at most 100 rich rules per firewall-cmd call, one after another: one call costs more than its size (10 rules 0.38 s, 100 rules 0.9 s, 300 rules 3.0 s, 1000 rules about 25 s, past the default command_timeout_ms of 15 s), so 1000 new sessions are 10 calls. Its changes are timed with 1000 rules preloaded in calls of 200',
  },
];

interface Options {
  backends: Profile[];
  sessions: number;
  runs: number;
  counts: number[];
  idleS: number;
  connectRuns: number;
}

/** The value after --name, or undefined. */
function flag(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

/** A whole number ≥ min from --name, else the default. */
function count(name: string, fallback: number, min = 1): number {
  const text = flag(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min)
    throw new LabError(`--${name} must be a whole number ≥ ${min}, got "${text}"`);
  return value;
}

/** The options from the command line. */
function parseOptions(): Options {
  const names = (flag('backends') ?? PROFILES.map((profile) => profile.name).join(',')).split(',');
  const backends = names.map((name) => {
    const profile = PROFILES.find((each) => each.name === name);
    if (!profile)
      throw new LabError(
        `--backends: no profile "${name}" (${PROFILES.map((each) => each.name).join(', ')})`,
      );
    return profile;
  });
  const counts = (flag('counts') ?? '0,100,1000').split(',').map(Number);
  if (
    !counts.every((each) => Number.isInteger(each) && each >= 0) ||
    counts.some((each, i) => i > 0 && each <= (counts[i - 1] ?? 0))
  )
    throw new LabError(`--counts must be ascending whole numbers, got "${flag('counts')}"`);
  const sessions = count('sessions', 1000);
  if (sessions > 1000 || sessions % USERS.length !== 0)
    throw new LabError(
      `--sessions must be a multiple of ${USERS.length} up to 1000 (the range holds 1001 ports)`,
    );
  return {
    backends,
    sessions,
    runs: count('runs', 50),
    counts,
    idleS: count('idle-s', 30),
    connectRuns: count('connect-runs', 5, 0),
  };
}

/** The p-th percentile (nearest rank) of a non-empty list. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return (
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? Number.NaN
  );
}

/** moshwall's Runner, but in the lab's server host (nsenter), for listing from outside. */
function labRunner(lab: Lab): Runner {
  return (argv: string[], options: ExecOptions) => runCommand(lab.serverArgv(argv), options);
}

/**
 * The profile's backend as moshwall builds it from the profile's config, over a Runner into the lab, to
 * list our rules from outside; a profile whose backend reads files (UFW) gives its own.
 */
function listingBackend(lab: Lab, profile: Profile): Backend {
  if (profile.listing !== undefined) return profile.listing(lab);
  const config = parseConfig(configText(profile), `${profile.name} profile`);
  return createBackend({ ...config, commandTimeoutMs: 30_000 }, labRunner(lab));
}

/** The config text the daemon and the worker get. */
function configText(profile: Profile): string {
  return [...profile.config, `port_range = "${RANGE}"`, 'max_sessions_per_user = 0', ''].join('\n');
}

/** Compiles the stand-in mosh-server once (in a temporary directory of ours). */
function compileFake(): { binary: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'moshwall-bench-'));
  const binary = join(dir, 'mosh-server');
  execFileSync('gcc', ['-O2', '-Wall', '-o', binary, FAKE_SOURCE], { stdio: 'inherit' });
  return { binary, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Installs it in the lab as FAKE: root-owned 0755 in a root-owned 0755 directory (the lab's /usr/local overlay). */
function installFake(lab: Lab, binary: string): void {
  mkdirSync(lab.serverPath(FAKE_DIR), { recursive: true, mode: 0o755 });
  chmodSync(lab.serverPath(FAKE_DIR), 0o755);
  copyFileSync(binary, lab.serverPath(FAKE));
  chmodSync(lab.serverPath(FAKE), 0o755);
}

/** Runs the in-lab worker and returns what it measured. */
async function measureChanges(lab: Lab, profile: Profile, options: Options): Promise<CountResult[]> {
  const config = lab.writeConfig(configText(profile));
  const request: Request = {
    counts: options.counts,
    runs: options.runs,
    ...(profile.runsAt ? { runsAt: profile.runsAt } : {}),
    ...(profile.preloadBatch ? { preloadBatch: profile.preloadBatch } : {}),
    firstPort: FIRST_PORT,
    probePort: 60000,
    preload: profile.preload,
  };
  const result = await lab.runServer(
    [process.execPath, '--import', import.meta.resolve('tsx'), WORKER, config, JSON.stringify(request)],
    { timeoutMs: 3_600_000 },
  );
  process.stderr.write(result.stderr);
  if (result.exitCode !== 0) throw new LabError(`the changes worker failed (exit ${result.exitCode})`);
  return JSON.parse(result.stdout.trim().split('\n').at(-1) ?? '[]') as CountResult[];
}

/** utime + stime of a process, in clock ticks (fields 14 and 15 of /proc/PID/stat). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** A field of /proc/PID/status in MiB (VmRSS, VmHWM). */
function memoryMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(
    readFileSync(`/proc/${pid}/status`, 'utf8'),
  )?.[1];
  return Number(kib ?? Number.NaN) / 1024;
}

interface Idle {
  cpu: number;
  rss: number;
  hwm: number;
  seconds: number;
}

/** The daemon's CPU use over `seconds` (% of one core), its RSS and peak RSS at the end. */
async function idleCost(pid: number, seconds: number, hz: number): Promise<Idle> {
  const before = cpuTicks(pid);
  const startedAt = performance.now();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const elapsedS = (performance.now() - startedAt) / 1000;
  return {
    cpu: ((cpuTicks(pid) - before) / hz / elapsedS) * 100,
    rss: memoryMiB(pid, 'VmRSS'),
    hwm: memoryMiB(pid, 'VmHWM'),
    seconds,
  };
}

/** The pids (as the lab sees them) of the sessions started, from the launchers' "MOSH CONNECT PORT PID" lines. */
async function startSessions(lab: Lab, sessions: number): Promise<number[]> {
  const each = sessions / USERS.length;
  const outputs = await Promise.all(
    USERS.map(async (user, index) => {
      const result = await lab.runServer([FAKE, SERVER_V4, String(FIRST_PORT + index * each), String(each)], {
        user,
        timeoutMs: 120_000,
      });
      if (result.exitCode !== 0) throw new LabError(`${FAKE} as ${user}: ${result.stderr}${result.stdout}`);
      return result.stdout;
    }),
  );
  const pids = outputs.flatMap((text) =>
    [...text.matchAll(/^MOSH CONNECT \d+ (\d+)$/gm)].map((match) => Number(match[1])),
  );
  if (pids.length !== sessions) throw new LabError(`started ${pids.length} of ${sessions} sessions`);
  return pids;
}

/**
 * Host pids of these lab pids, in one pass over /proc (lab.hostPid walks /proc once per pid, which for
 * 1000 sessions takes longer than the converge itself).
 */
function hostPids(lab: Lab, nsPids: number[]): number[] {
  const labNamespace = namespaceOf(lab.server.holderPid, 'pid');
  const byNsPid = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || namespaceOf(Number(name), 'pid') !== labNamespace) continue;
    const inner = statusField(Number(name), 'NSpid')?.split(/\s+/).at(-1);
    if (inner !== undefined) byNsPid.set(Number(inner), Number(name));
  }
  return nsPids.map((nsPid) => {
    const pid = byNsPid.get(nsPid);
    if (pid === undefined) throw new LabError(`session pid ${nsPid} is not in the lab`);
    return pid;
  });
}

/** Ports of ours the backend lists now (0 on a failed listing, which is retried by the caller). */
async function ourPortCount(backend: Backend): Promise<number> {
  return ourSpecs(await backend.listRules()).length;
}

interface Converge {
  sessions: number;
  openMs: number;
  closeMs: number;
  genuine: number;
  refused: number;
  idle: Idle;
  /** Daemon+shim connects with the sessions live (ms). */
  connectLive: number[];
}

/** The sessions of the converge: --sessions, or the profile's cap when that is lower. */
function sessionsOf(profile: Profile, options: Options): number {
  return Math.min(options.sessions, profile.sessionsCap?.sessions ?? options.sessions);
}

/** Sessions, status check, idle, (connects), kill, with one daemon. */
async function converge(
  lab: Lab,
  profile: Profile,
  options: Options,
  hz: number,
  say: (text: string) => void,
): Promise<Converge> {
  const backend = listingBackend(lab, profile);
  const sessions = sessionsOf(profile, options);
  const daemon = await startDaemon(lab, configText(profile), { verbose: false, readyTimeoutMs: 60_000 });
  let pids: number[] = [];
  try {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const startedAt = performance.now();
    const nsPids = await startSessions(lab, sessions);
    const startMs = performance.now() - startedAt;
    const opened = await waitUntil(async () => (await ourPortCount(backend)) >= sessions, 600_000, 100);
    if (!opened) throw new LabError(`the daemon did not open ${sessions} ports:\n${daemon.log()}`);
    const openMs = performance.now() - startedAt;
    say(
      `  ${sessions} sessions started in ${Math.round(startMs)} ms, all open after ${Math.round(openMs)} ms`,
    );
    pids = hostPids(lab, nsPids);
    const status = await moshwall(lab, ['status', '--json']);
    const report = JSON.parse(status.stdout) as { sessions: unknown[]; refused: unknown[] };
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const idle = await idleCost(daemon.pid, options.idleS, hz);
    say(
      `  idle: ${idle.cpu.toFixed(2)} % CPU, VmRSS ${idle.rss.toFixed(1)} MiB, VmHWM ${idle.hwm.toFixed(1)} MiB`,
    );
    const connectLive: number[] = [];
    if (profile.setBased && options.connectRuns > 0) {
      await installShim(lab);
      for (let index = 0; index < options.connectRuns; index += 1) {
        const ms = await connectOnce(lab, backend, 'daemon+shim');
        if (ms !== undefined) connectLive.push(ms);
      }
      await removeShim(lab);
    }
    const alive = pids.filter((pid) => !isGone(pid)).length;
    if (alive !== sessions) throw new LabError(`only ${alive} of ${sessions} sessions are alive`);
    const killedAt = performance.now();
    await Promise.all(pids.map((pid) => lab.killServerProcess(pid)));
    // ufw rewrites its rules files in place (shutil.copy), so a read can catch one half-written: count
    // the close as done at the first of readings that stayed at zero for a whole second.
    let zeroSince: number | undefined;
    const closed = await waitUntil(
      async () => {
        const count = await ourPortCount(backend);
        const now = performance.now();
        zeroSince = count === 0 ? (zeroSince ?? now) : undefined;
        return zeroSince !== undefined && now - zeroSince >= 1000;
      },
      600_000,
      100,
    );
    if (!closed || zeroSince === undefined)
      throw new LabError(`the daemon did not close every port:\n${daemon.log()}`);
    const closeMs = zeroSince - killedAt;
    say(`  all closed ${Math.round(closeMs)} ms after the kill`);
    return {
      sessions,
      openMs,
      closeMs,
      genuine: report.sessions.length,
      refused: report.refused.length,
      idle,
      connectLive,
    };
  } finally {
    await Promise.all(pids.map((pid) => lab.killServerProcess(pid)));
    // SIGTERM lets a reconcile in flight finish first (with ufw, one process per rule).
    await daemon.stop('SIGTERM', 300_000);
  }
}

type ConnectMode = 'wide open' | 'daemon+shim';

/** One real mosh connect (launch → READY), ms or undefined when it timed out; the session is ended after. */
async function connectOnce(lab: Lab, backend: Backend, mode: ConnectMode): Promise<number | undefined> {
  const client = await startMoshClient(lab, { user: 'alice' });
  let port: number | undefined;
  try {
    let ms: number | undefined;
    try {
      ms = (await client.waitReady(10_000, 10)) - client.launchedAt;
    } catch (error) {
      if (!(error instanceof LabError)) throw error;
    }
    await waitUntil(() => client.serverPort() !== undefined, 5000);
    port = client.serverPort();
    return ms;
  } finally {
    await client.close();
    for (const pid of port === undefined ? [] : await serverPidsOnPort(lab, port))
      await lab.killServerProcess(pid);
    if (mode === 'daemon+shim' && port !== undefined) {
      const gone = port;
      await waitUntil(
        async () => !ourSpecs(await backend.listRules()).some((spec) => spec.port === gone),
        10_000,
        50,
      );
    }
  }
}

/** Interleaved connects at rest (no other session): wide open (no daemon) vs daemon+shim. */
async function connectAtRest(
  lab: Lab,
  profile: Profile,
  runs: number,
): Promise<Record<ConnectMode, number[]>> {
  const backend = listingBackend(lab, profile);
  const samples: Record<ConnectMode, number[]> = { 'wide open': [], 'daemon+shim': [] };
  // One uncounted warm-up connect, wide open.
  for (let round = -1; round < runs; round += 1) {
    const modes: ConnectMode[] =
      round % 2 === 0 ? ['daemon+shim', 'wide open'] : ['wide open', 'daemon+shim'];
    for (const mode of round < 0 ? (['wide open'] as ConnectMode[]) : modes) {
      let daemon: Daemon | undefined;
      if (mode === 'wide open') await profile.wideOpen(lab, true);
      else {
        await installShim(lab);
        daemon = await startDaemon(lab, configText(profile), { verbose: false });
      }
      try {
        const ms = await connectOnce(lab, backend, mode);
        if (round >= 0 && ms !== undefined) samples[mode].push(ms);
      } finally {
        if (mode === 'wide open') await profile.wideOpen(lab, false);
        else {
          await daemon?.stop();
          await removeShim(lab);
        }
      }
    }
  }
  return samples;
}

interface BackendResult {
  profile: Profile;
  changes: CountResult[];
  converge: Converge;
  connect?: Record<ConnectMode, number[]>;
  /** When its lab was made (ISO), and the load average at its start → end. */
  date: string;
  load: string;
}

/** /proc/loadavg's three averages. */
const load = () =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');

/** Everything for one backend, in a lab of its own. */
async function benchBackend(
  profile: Profile,
  options: Options,
  binary: string,
  hz: number,
  say: (text: string) => void,
): Promise<BackendResult> {
  const before = load();
  const date = new Date().toISOString();
  say(`${profile.name}: lab (load ${before})`);
  const lab = await createLab({ users: USERS, ...profile.labOptions });
  try {
    await profile.setUp(lab);
    installFake(lab, binary);
    say(`${profile.name}: changes with ${options.counts.join(', ')} rules of ours`);
    const changes = await measureChanges(lab, profile, options);
    let connect: Record<ConnectMode, number[]> | undefined;
    if (profile.setBased && options.connectRuns > 0) {
      say(`${profile.name}: connect at rest, ${options.connectRuns} interleaved runs`);
      connect = await connectAtRest(lab, profile, options.connectRuns);
    }
    say(`${profile.name}: converge 0 → ${sessionsOf(profile, options)} → 0`);
    const result = await converge(lab, profile, options, hz, say);
    return {
      profile,
      changes,
      converge: result,
      ...(connect ? { connect } : {}),
      date,
      load: `${before} → ${load()}`,
    };
  } finally {
    await lab.destroy();
  }
}

/** An aligned Markdown table: first column left, the others right. */
function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, column) =>
    Math.max(3, title.length, ...rows.map((cells) => (cells[column] ?? '').length)),
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, column) => (column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((width, column) => (column === 0 ? '-'.repeat(width) : `${'-'.repeat(width - 1)}:`)).join(' | ')} |`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

const ms = (value: number) => (Number.isNaN(value) ? '—' : value < 10 ? value.toFixed(1) : value.toFixed(0));

/** The tables of the report, by the start of their heading. */
const SECTIONS = {
  changes: '## One change',
  converge: '## `moshwall daemon`',
  connect: '## Connect',
} as const;
type Section = keyof typeof SECTIONS;

/**
 * What an earlier report says of each backend: its table rows (cells), when it ran and its load line,
 * and its own note line. The report of a run keeps these for the backends it did not run.
 */
interface Earlier {
  rows: Record<Section, string[][]>;
  runs: Map<string, { date: string; load: string }>;
  notes: Map<string, string>;
}

/** The runs line of the report: per backend, when it ran and the load average (start → end). */
const RUNS_LINE = 'Per backend, when it ran and the load average (start → end)';

/** Reads an earlier report (this script's Markdown, or the older one with a single "Load average" line). */
function readEarlier(text: string): Earlier {
  const earlier: Earlier = {
    rows: { changes: [], converge: [], connect: [] },
    runs: new Map(),
    notes: new Map(),
  };
  const lines = text.split('\n');
  const fileDate = /\((\S+)\)$/.exec(lines[0] ?? '')?.[1] ?? '?';
  const names = new Set(PROFILES.map((profile) => profile.name));
  let section: Section | undefined;
  let tableLine = 0;
  for (const line of lines) {
    if (line.startsWith('#')) {
      section = (Object.keys(SECTIONS) as Section[]).find((key) => line.startsWith(SECTIONS[key]));
      tableLine = 0;
    } else if (line.startsWith('|')) {
      tableLine += 1;
      // The header and the rule line come first.
      if (section !== undefined && tableLine > 2)
        earlier.rows[section].push(
          line
            .split('|')
            .slice(1, -1)
            .map((cell) => cell.trim()),
        );
    } else {
      const runs = new RegExp(
        `^(?:${RUNS_LINE.replace(/[()]/g, '\\$&')}|Load average per backend \\(start → end\\)): (.*)\\.$`,
      ).exec(line);
      for (const item of runs?.[1]?.split('; ') ?? []) {
        const [, name, date, loads] = /^(\S+) (?:\((\S+)\) )?(.*)$/.exec(item) ?? [];
        if (name !== undefined && loads !== undefined)
          earlier.runs.set(name, { date: date ?? fileDate, load: loads });
      }
      const note = /^- (\S+): /.exec(line)?.[1];
      if (note !== undefined && names.has(note)) earlier.notes.set(note, line);
    }
  }
  return earlier;
}

/** The earlier report at RESULTS, or nothing when there is none. */
function earlierReport(): Earlier {
  try {
    return readEarlier(readFileSync(RESULTS, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return readEarlier('');
    throw error;
  }
}

/** Earlier rows of backends not run now, with the rows of this run, in PROFILES order. */
function mergeRows(earlier: string[][], fresh: string[][], ran: Set<string>): string[][] {
  const order = (row: string[]) => {
    const index = PROFILES.findIndex((profile) => profile.name === row[0]);
    return index < 0 ? PROFILES.length : index;
  };
  return [...earlier.filter((row) => !ran.has(row[0] ?? '')), ...fresh].sort((a, b) => order(a) - order(b));
}

/** The report's Markdown: this run's backends, and what `earlier` holds of the others. */
function report(results: BackendResult[], earlier: Earlier, options: Options, where: string): string {
  const ran = new Set(results.map((each) => each.profile.name));
  const runs = new Map([...earlier.runs].filter(([name]) => !ran.has(name)));
  for (const each of results) runs.set(each.profile.name, { date: each.date, load: each.load });
  const runItems = PROFILES.flatMap((profile) => {
    const run = runs.get(profile.name);
    return run === undefined ? [] : [`${profile.name} (${run.date}) ${run.load}`];
  });
  const changeRows = mergeRows(
    earlier.rows.changes,
    results.flatMap(({ profile, changes }) =>
      changes.map((each) => [
        profile.name,
        String(each.count),
        String(each.allowMs.length),
        ms(median(each.allowMs)),
        ms(percentile(each.allowMs, 99)),
        ms(median(each.revokeMs)),
        ms(percentile(each.revokeMs, 99)),
        ms(median(each.listMs)),
      ]),
    ),
    ran,
  );
  const convergeRows = mergeRows(
    earlier.rows.converge,
    results.map(({ profile, converge: c }) => [
      profile.name,
      String(c.sessions),
      `${c.genuine} / ${c.refused}`,
      (c.openMs / 1000).toFixed(1),
      (c.closeMs / 1000).toFixed(1),
      c.idle.cpu.toFixed(2),
      c.idle.rss.toFixed(1),
      c.idle.hwm.toFixed(1),
    ]),
    ran,
  );
  const connectRows = mergeRows(
    earlier.rows.connect,
    results.flatMap(({ profile, connect, converge: c }) => {
      if (!connect) return [];
      const wide = connect['wide open'].length > 0 ? median(connect['wide open']) : Number.NaN;
      const row = (label: string, samples: number[]) => [
        profile.name,
        label,
        String(samples.length),
        ms(samples.length > 0 ? median(samples) : Number.NaN),
        samples.length > 0 ? `${(median(samples) / wide).toFixed(2)}×` : '—',
      ];
      return [
        row('wide open', connect['wide open']),
        row('daemon+shim', connect['daemon+shim']),
        row(`daemon+shim, ${c.sessions} live`, c.connectLive),
      ];
    }),
    ran,
  );
  const notes = new Map([...earlier.notes].filter(([name]) => !ran.has(name)));
  for (const { profile, converge: c } of results) {
    const capped = profile.sessionsCap !== undefined && c.sessions < options.sessions;
    const parts = [
      ...(capped ? [`${c.sessions} sessions, not ${options.sessions}: ${profile.sessionsCap?.why}`] : []),
      ...(profile.note !== undefined ? [profile.note] : []),
    ];
    if (parts.length > 0) notes.set(profile.name, `- ${profile.name}: ${parts.join('; ')}.`);
  }
  return [
    `# moshwall at scale, per backend (${new Date().toISOString()})`,
    '',
    `Machine: ${where}.`,
    `${RUNS_LINE}: ${runItems.join('; ')}.`,
    '',
    `## One change through the Backend API (timed inside the lab), with N rules of ours already there`,
    '',
    table(
      [
        'backend',
        'N',
        'runs',
        'allow median ms',
        'allow p99 ms',
        'revoke median ms',
        'revoke p99 ms',
        'listRules median ms',
      ],
      changeRows,
    ),
    '',
    `## \`moshwall daemon\` with N genuine sessions (${USERS.length} users), all started at once`,
    '',
    table(
      ['backend', 'N', 'genuine / refused', '0 → N s', 'N → 0 s', 'idle CPU %', 'VmRSS MiB', 'VmHWM MiB'],
      convergeRows,
    ),
    '',
    ...(connectRows.length > 0
      ? [
          '## Connect (launching `mosh` → READY on screen), set-based backends',
          '',
          table(['backend', 'setup', 'runs', 'median ms', 'median / wide open'], connectRows),
          '',
        ]
      : []),
    'Notes:',
    '',
    `- Changes: one v4 port from anywhere allowed, then revoked, ${options.runs} times per N after one untimed pair (fewer where the runs column says so); p99 is the nearest-rank 99th percentile; listRules is the median of 10. Classic UFW's (ufw) preloaded rules are one rule made by ufw and ufw's own user.rules lines for the others with the port changed, then one \`ufw reload\` (what ${options.counts.at(-1)} \`ufw allow\` calls would leave, in seconds instead of minutes); the others preload through one allow() call.`,
    '- Profiles: ufw-ipset is UFW with `ufw_fast_path = "ipset"` and the hook `moshwall install` adds (ports are members of moshwall\'s ipsets, matched from UFW\'s after chains); firewalld is a real firewalld (FirewallBackend=nftables) on a private system bus in the lab, ports as runtime rich rules in its default zone public.',
    `- Sessions: a small C stand-in (bench/fixtures/fake-mosh-server.c) installed root-owned as ${FAKE}, run as the lab users; each session is a detached child holding one UDP port on ${SERVER_V4}. "genuine / refused" is what \`moshwall status\` counted with all of them live. Converge times run from launching the sessions to the last port listed by the backend (polled every 100 ms from outside the lab), and from the kill to the last one gone.`,
    ...PROFILES.flatMap((profile) => {
      const note = notes.get(profile.name);
      return note === undefined ? [] : [note];
    }),
    '- Connect: "wide open" is an admin rule accepting the whole range and no daemon; "daemon+shim" is `moshwall daemon` with the shim as /usr/local/bin/mosh-server, with no other session, interleaved with wide open; the last row is the same with every bench session live. One uncounted wide-open connect runs first.',
    `- Idle: the daemon (no --verbose, poll_interval_ms ${DEFAULT_CONFIG.pollIntervalMs}) over ${options.idleS} s with every session live, utime+stime of /proc/PID/stat; VmHWM is the peak RSS since the daemon started (it includes the converge).`,
    '',
  ].join('\n');
}

/** nproc, CPU, kernel, node, tool versions. */
function machine(): string {
  const version = (argv: string[]) => {
    try {
      return (
        execFileSync(argv[0] ?? '', argv.slice(1), { encoding: 'utf8' })
          .split('\n')[0]
          ?.trim() ?? '?'
      );
    } catch {
      return `${argv[0]} ?`;
    }
  };
  return [
    `nproc ${availableParallelism()} (${cpus()[0]?.model ?? 'unknown CPU'})`,
    `Linux ${release()}`,
    `node ${process.version}`,
    version(['ufw', 'version']),
    version(['nft', '--version']),
    version(['iptables-legacy', '--version']),
    version(['ipset', 'version']),
    // firewall-cmd --version asks the running firewalld (none on this host): the package's version.
    version(['dpkg-query', '--show', 'firewalld']).replace('\t', ' '),
    version(['mosh', '--version']),
  ].join(', ');
}

async function main(): Promise<number> {
  requireRoot();
  const options = parseOptions();
  if (options.connectRuns > 0 && missingClientTools().length > 0)
    throw new LabError(
      `${missingClientTools().join(', ')} not found (apt-get install tmux mosh), or pass --connect-runs 0`,
    );
  const hz = Number((await run(['getconf', 'CLK_TCK'])).stdout.trim()) || 100;
  const say = (text: string) => process.stdout.write(`${text}\n`);
  const fake = compileFake();
  const results: BackendResult[] = [];
  // Read before the first write: the rows of backends not run now are kept from it.
  const earlier = earlierReport();
  try {
    for (const profile of options.backends) {
      results.push(await benchBackend(profile, options, fake.binary, hz, say));
      // What is done so far, in case a later backend fails.
      mkdirSync(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
      writeFileSync(RESULTS, report(results, earlier, options, machine()));
    }
  } finally {
    fake.remove();
  }
  const text = report(results, earlier, options, machine());
  say('');
  process.stdout.write(text);
  mkdirSync(fileURLToPath(new URL('./results/', import.meta.url)), { recursive: true });
  writeFileSync(RESULTS, text);
  say(`\nwritten to ${RESULTS}`);
  return 0;
}

runBench('bench/scale.ts', main);
