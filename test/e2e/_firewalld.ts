// A real firewalld inside the lab's server host: a private system D-Bus (a dbus-daemon of ours with its
// socket at /run/dbus/system_bus_socket on the lab's tmpfs /run) and firewalld on it, with the lab's
// own /etc/firewalld (the lab's /etc is an overlay: whatever firewalld writes stays in the lab directory)
// and FirewallBackend=nftables, so its tables live in the lab's network namespace only. Both run as the
// lab's root; without polkit on that bus firewalld authorizes callers by uid (root only). Both are
// recorded as lab children and killed with every other process of the lab by the teardown.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LabError, type Result, type Started, start } from './_exec.ts';
import { waitUntil } from './_poll.ts';
import { isGone } from './_procfs.ts';
import { commandPid } from './_server.ts';
import type { LabState } from './_teardown.ts';

/** The bus config: a system bus on the lab's /run where root may own names, call, and monitor. */
const BUS_CONFIG = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path=/run/dbus/system_bus_socket</listen>
  <policy context="default">
    <allow user="root"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
</busconfig>
`;

/** firewalld.conf for the lab: Debian's defaults, spelled out so the host's file cannot change them. */
const FIREWALLD_CONF = `DefaultZone=public
CleanupOnExit=yes
CleanupModulesOnExit=no
Lockdown=no
IPv6_rpfilter=yes
IndividualCalls=no
LogDenied=off
FirewallBackend=nftables
FlushAllOnReload=yes
RFC3964_IPv4=yes
`;

/** The lab's firewalld: its pids (host pids) and log file. */
export interface LabFirewalld {
  dbusPid: number;
  firewalldPid: number;
  logFile: string;
}

/** How _firewalld.ts reaches into a lab being built. */
export interface FirewalldHost {
  state: LabState;
  dir: string;
  /** argv that runs argv as root in the server host. */
  inServer(argv: string[]): string[];
  /** Whether nsenter forks into a PID namespace (then the command's pid is the launcher's child). */
  forks: boolean;
  /** A host path to a path of the server host (through /proc/<holder>/root). */
  serverPath(path: string): string;
  /** Runs argv as root in the server host. */
  runServer(argv: string[]): Promise<Result>;
}

/** Starts argv in the server host, recorded for the teardown, and returns its host pid. */
async function startIn(host: FirewalldHost, argv: string[], logFile: string): Promise<[number, Started]> {
  const launcher = start(host.inServer(argv), { logFile });
  host.state.children.push(launcher);
  const pid = await commandPid(launcher, host.forks, host.state.inodes.net[0]);
  if (pid === undefined) {
    throw new LabError(`${argv[0]} ended at once in the lab: ${launcher.output().stderr.slice(-2000)}`);
  }
  return [pid, launcher];
}

/**
 * Starts the private system bus and firewalld in the server host, and waits until `firewall-cmd
 * --state` says "running" (about a second). The lab's UFW must be left inactive.
 */
export async function startFirewalld(host: FirewalldHost): Promise<LabFirewalld> {
  const busConfig = join(host.dir, 'dbus-system.conf');
  writeFileSync(busConfig, BUS_CONFIG, { mode: 0o644 });
  writeFileSync(host.serverPath('/etc/firewalld/firewalld.conf'), FIREWALLD_CONF, { mode: 0o644 });
  const made = await host.runServer(['mkdir', '-p', '-m', '755', '/run/dbus']);
  if (made.exitCode !== 0) throw new LabError(`mkdir /run/dbus in the lab failed: ${made.stderr}`);
  const [dbusPid, dbus] = await startIn(
    host,
    ['dbus-daemon', `--config-file=${busConfig}`, '--nofork', '--nopidfile'],
    join(host.dir, 'dbus.log'),
  );
  const socket = host.serverPath('/run/dbus/system_bus_socket');
  if (!(await waitUntil(() => existsSync(socket) || isGone(dbusPid), 5000)) || isGone(dbusPid)) {
    throw new LabError(`dbus-daemon in the lab did not listen: ${dbus.output().stderr.slice(-2000)}`);
  }
  const logFile = join(host.dir, 'firewalld.log');
  const [firewalldPid, firewalld] = await startIn(
    host,
    ['firewalld', '--nofork', '--nopid', '--log-target', 'file', '--log-file', logFile],
    join(host.dir, 'firewalld.out'),
  );
  let state = { exitCode: -1, stdout: '', stderr: '' };
  const running = await waitUntil(
    async () => {
      state = await host.runServer(['firewall-cmd', '--state']);
      return (state.exitCode === 0 && state.stdout.trim() === 'running') || isGone(firewalldPid);
    },
    30_000,
    100,
  );
  if (!running || isGone(firewalldPid)) {
    throw new LabError(
      `firewalld in the lab did not start (${state.stdout.trim()} ${state.stderr.trim()}): ` +
        firewalld.output().stderr.slice(-2000),
    );
  }
  return { dbusPid, firewalldPid, logFile };
}
