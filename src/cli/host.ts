import { createUfwBackend } from '../backends/ufw.ts';
import type { Config } from '../config.ts';
import { rootOnlyPathProblem } from '../discovery/genuine.ts';
import { createHostProcReader, type ProcReader } from '../discovery/proc-reader.ts';
import { scanSessions } from '../discovery/scan.ts';
import { parseGroup } from '../discovery/users.ts';
import type { DoctorFacts } from '../doctor.ts';
import type { EngineDeps } from '../engine.ts';
import { holdFileLock, runCommand } from '../exec.ts';
import type { Logger } from '../log.ts';
import type { GroupDirectory } from '../policy.ts';
import type { HostEdges } from './run.ts';
import { ensureRuntimeDirectory } from './runtime-dir.ts';

/** The group directory of this host, from /etc/group read through the reader. */
function readGroups(reader: ProcReader): GroupDirectory {
  const table = parseGroup(reader.readText('/etc/group'));
  return {
    gidOf: (name) => table.gidByName.get(name),
    membersOf: (name) => table.membersByName.get(name) ?? [],
  };
}

/** True when the host has an IPv6 address other than loopback (from /proc/net/if_inet6). */
function hostHasIpv6(reader: ProcReader): boolean {
  try {
    return reader
      .readText('/proc/net/if_inet6')
      .split('\n')
      .some((line) => line.trim() !== '' && !line.startsWith('00000000000000000000000000000001'));
  } catch {
    return false;
  }
}

/** The engine's real edges: /proc, the ufw command, the flock lock. */
function engine(config: Config, log: Logger): EngineDeps {
  const reader = createHostProcReader();
  return {
    config,
    log,
    backend: createUfwBackend({ runner: runCommand, timeoutMs: config.commandTimeoutMs }),
    scan: () => scanSessions(reader, { range: config.portRange, serverNames: config.moshServerNames }),
    groups: () => readGroups(reader),
    lock: async (path, timeoutMs) => {
      ensureRuntimeDirectory(path);
      return holdFileLock(path, timeoutMs);
    },
  };
}

/** What doctor judges, read from this host; a failure to list rules becomes a finding, not a crash. */
async function doctorFacts(config: Config, log: Logger, isRoot: boolean): Promise<DoctorFacts> {
  const deps = engine(config, log);
  const reader = createHostProcReader();
  const probe = await deps.backend.probe().catch((error: unknown) => ({
    installed: false,
    active: false,
    ipv6: false,
    detail: [error instanceof Error ? error.message : String(error)],
  }));
  let rules: DoctorFacts['rules'] = [];
  if (probe.installed) {
    rules = await deps.backend
      .listRules()
      .catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
  }
  return {
    isRoot,
    config,
    backendName: deps.backend.name,
    probe,
    rules,
    moshServerProblem: rootOnlyPathProblem(config.moshServer, reader, 'mosh-server'),
    hostHasIpv6: hostHasIpv6(reader),
  };
}

export const hostEdges: HostEdges = { engine, doctorFacts };
