// Measuring one backend in a lab of its own: changes (in-lab worker), converge, idle cost, connects (see ../scale.ts).
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ourSpecs } from '../../src/engine.ts';
import type { Backend } from '../../src/firewall.ts';
import { type Daemon, installShim, moshwall, removeShim, startDaemon } from '../../test/e2e/_daemon.ts';
import { LabError } from '../../test/e2e/_exec.ts';
import { startMoshClient } from '../../test/e2e/_mosh-client.ts';
import { serverPidsOnPort } from '../../test/e2e/_observe.ts';
import { waitUntil } from '../../test/e2e/_poll.ts';
import { isGone, namespaceOf, statusField } from '../../test/e2e/_procfs.ts';
import { createLab, type Lab, SERVER_V4 } from '../../test/e2e/lab.ts';
import type { CountResult, Request } from '../_scale-changes.ts';
import {
  configText,
  FAKE,
  FAKE_DIR,
  FAKE_SOURCE,
  FIRST_PORT,
  listingBackend,
  type Options,
  type Profile,
  USERS,
  WORKER,
} from './profiles.ts';

/** Compiles the stand-in mosh-server once (in a temporary directory of ours). */
export function compileFake(): { binary: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'moshwall-bench-'));
  const binary = join(dir, 'mosh-server');
  execFileSync('gcc', ['-O2', '-Wall', '-o', binary, FAKE_SOURCE], { stdio: 'inherit' });
  return { binary, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Installs it in the lab as FAKE: root-owned 0755 in a root-owned 0755 directory (the lab's /usr/local overlay). */
export function installFake(lab: Lab, binary: string): void {
  mkdirSync(lab.serverPath(FAKE_DIR), { recursive: true, mode: 0o755 });
  chmodSync(lab.serverPath(FAKE_DIR), 0o755);
  copyFileSync(binary, lab.serverPath(FAKE));
  chmodSync(lab.serverPath(FAKE), 0o755);
}

/** Runs the in-lab worker and returns what it measured. */
export async function measureChanges(lab: Lab, profile: Profile, options: Options): Promise<CountResult[]> {
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
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** A field of /proc/PID/status in MiB (VmRSS, VmHWM). */
export function memoryMiB(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const kib = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(
    readFileSync(`/proc/${pid}/status`, 'utf8'),
  )?.[1];
  return Number(kib ?? Number.NaN) / 1024;
}

export interface Idle {
  cpu: number;
  rss: number;
  hwm: number;
  seconds: number;
}

/** The daemon's CPU use over `seconds` (% of one core), its RSS and peak RSS at the end. */
export async function idleCost(pid: number, seconds: number, hz: number): Promise<Idle> {
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

/**
 * The pids (as the lab sees them) of the sessions started, from the launchers' "MOSH CONNECT PORT PID"
 * lines; with `shells`, each with a stand-in shell beside it (bench/fixtures/fake-mosh-server.c).
 */
export async function startSessions(lab: Lab, sessions: number, shells = false): Promise<number[]> {
  const each = sessions / USERS.length;
  const outputs = await Promise.all(
    USERS.map(async (user, index) => {
      const argv = [
        FAKE,
        SERVER_V4,
        String(FIRST_PORT + index * each),
        String(each),
        ...(shells ? ['shell'] : []),
      ];
      const result = await lab.runServer(argv, {
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
export function hostPids(lab: Lab, nsPids: number[]): number[] {
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
export async function ourPortCount(backend: Backend): Promise<number> {
  return ourSpecs(await backend.listRules()).length;
}

export interface Converge {
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
export function sessionsOf(profile: Profile, options: Options): number {
  return Math.min(options.sessions, profile.sessionsCap?.sessions ?? options.sessions);
}

/** Sessions, status check, idle, (connects), kill, with one daemon. */
export async function converge(
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
    const nsPids = await startSessions(lab, sessions, options.shells);
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
    if ((profile.measuresConnect ?? profile.setBased) && options.connectRuns > 0) {
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

export type ConnectMode = 'wide open' | 'daemon+shim';

/** One real mosh connect (launch → READY), ms or undefined when it timed out; the session is ended after. */
export async function connectOnce(
  lab: Lab,
  backend: Backend,
  mode: ConnectMode,
): Promise<number | undefined> {
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
    for (const pid of port === undefined ? [] : await serverPidsOnPort(lab, port)) {
      // The session may end by itself between the listing and the kill (the client just closed): then
      // its pid is gone, or already another process's, which the lab refuses to touch.
      await lab.killServerProcess(pid).catch((error: unknown) => {
        const elsewhere = error instanceof LabError && /not a process in this lab/.test(error.message);
        if (!isGone(pid) && !elsewhere) throw error;
      });
    }
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

/** How long a freshly started daemon gets for its start-up (UFW's probe runs the ufw command twice). */
const SETTLE_MS = 1500;

/** Interleaved connects at rest (no other session): wide open (no daemon) vs daemon+shim. */
export async function connectAtRest(
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
        // Sessions meet a daemon that has been running: let its start-up (probe, first reconcile) end.
        await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
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

export interface BackendResult {
  profile: Profile;
  changes: CountResult[];
  converge: Converge;
  connect?: Record<ConnectMode, number[]>;
  /** When its lab was made (ISO), and the load average at its start → end. */
  date: string;
  load: string;
}

/** /proc/loadavg's three averages. */
export const load = () =>
  loadavg()
    .map((value) => value.toFixed(2))
    .join(' ');

/** Everything for one backend, in a lab of its own. */
export async function benchBackend(
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
    if ((profile.measuresConnect ?? profile.setBased) && options.connectRuns > 0) {
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
