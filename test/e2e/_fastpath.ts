// The UFW fast path in the lab, for the fast-path tests and the bench: installs and removes the hook
// (moshwall's own install code, src/install/ufw-hook.ts + apply.ts, run in this process against the
// server host's /etc/ufw, its commands entering the server host), reads our sets, and snapshots the
// files the hook touches so a test can prove they come back byte for byte.
import { readFileSync, statSync } from 'node:fs';
import { FAST_SET_NAMES } from '../../src/backends/ufw/fastpath.ts';
import { createUfwBackend } from '../../src/backends/ufw.ts';
import type { Backend } from '../../src/firewall.ts';
import { applySteps } from '../../src/install/apply.ts';
import { modeIfAny, readTextIfAny } from '../../src/install/host-files.ts';
import { type HookFacts, planHookInstall, planHookRemoval } from '../../src/install/ufw-hook.ts';
import { LabError } from './_exec.ts';
import { ourTuple } from './_moshwall.ts';
import { type Lab, labRunner, type UfwTuple } from './lab.ts';

/** A moshwall config with the fast path on (the defaults otherwise). */
export const FAST_PATH_CONFIG = 'backend = "ufw"\nport_range = "60000:61000"\nufw_fast_path = "ipset"\n';

/** The files the hook changes (the first three), and UFW's before rules it must never touch. */
export const HOOK_FILES = [
  '/etc/ufw/after.rules',
  '/etc/ufw/after6.rules',
  '/etc/ufw/before.init',
  '/etc/ufw/before.rules',
  '/etc/ufw/before6.rules',
];

/** The hook facts of the lab's server host (its /etc/ufw through /proc/<holder>/root). */
function labHookFacts(lab: Lab): HookFacts {
  return {
    ufwDir: lab.serverPath('/etc/ufw'),
    readText: readTextIfAny,
    modeOf: modeIfAny,
  };
}

/** Carries out hook steps in the lab, failing with everything they said. */
async function carryOut(lab: Lab, steps: ReturnType<typeof planHookInstall>): Promise<string[]> {
  const said: string[] = [];
  await applySteps(steps, {
    runner: labRunner(lab),
    timeoutMs: 30_000,
    flush: async () => {
      throw new LabError('hook steps never flush');
    },
    say: (line) => said.push(line),
  });
  return said;
}

/** Adds the fast path's hook in the lab (sets, blocks, `ufw reload`), as `moshwall install` does. */
export async function installLabFastPath(lab: Lab): Promise<void> {
  await carryOut(lab, planHookInstall(labHookFacts(lab)));
}

/** Removes the hook in the lab (blocks, `ufw reload`, our sets), as `moshwall uninstall` does. */
export async function removeLabFastPath(lab: Lab): Promise<string[]> {
  return carryOut(lab, planHookRemoval(labHookFacts(lab)));
}

/** The UFW backend in fast-path mode over the lab's files and tools, run in this process. */
export function labFastBackend(lab: Lab): Backend {
  return createUfwBackend({
    runner: labRunner(lab),
    rulesDir: lab.serverPath('/etc/ufw'),
    defaultsFile: lab.serverPath('/etc/default/ufw'),
    timeoutMs: 15_000,
    fastPath: 'ipset',
  });
}

/** "add SET MEMBER" lines of our sets in the lab, sorted; a set that does not exist adds nothing. */
export async function fastSetMembers(lab: Lab): Promise<string[]> {
  const lines: string[] = [];
  for (const set of FAST_SET_NAMES) {
    const saved = await lab.runServer(['ipset', 'save', set]);
    if (saved.exitCode !== 0) continue;
    lines.push(...saved.stdout.split('\n').filter((line) => line.startsWith('add ')));
  }
  return lines.sort();
}

/** Which of our sets exist in the lab. */
export async function fastSetsPresent(lab: Lab): Promise<string[]> {
  const listed = await lab.runServer(['ipset', 'list', '-n']);
  if (listed.exitCode !== 0) throw new LabError(`ipset list -n: ${listed.stderr}`);
  const names = new Set(listed.stdout.split('\n').map((line) => line.trim()));
  return FAST_SET_NAMES.filter((name) => names.has(name));
}

/** Empties our sets in the lab (those that exist), as a test's cleanup. */
export async function flushFastSets(lab: Lab): Promise<void> {
  for (const set of await fastSetsPresent(lab)) {
    const result = await lab.runServer(['ipset', 'flush', set]);
    if (result.exitCode !== 0) throw new LabError(`ipset flush ${set}: ${result.stderr}`);
  }
}

/** Each hook file's mode and bytes (base64), to compare before and after. */
export function hookSnapshot(lab: Lab): Record<string, string> {
  return Object.fromEntries(
    HOOK_FILES.map((file) => {
      const path = lab.serverPath(file);
      const mode = (statSync(path).mode & 0o7777).toString(8);
      return [file, `${mode} ${readFileSync(path).toString('base64')}`];
    }),
  );
}

/** `iptables -S` / `ip6tables -S` of the after-input chains in the lab. */
export async function afterChains(lab: Lab): Promise<string> {
  const v4 = await lab.runServer(['iptables', '-S', 'ufw-after-input']);
  const v6 = await lab.runServer(['ip6tables', '-S', 'ufw6-after-input']);
  return `${v4.stdout}${v6.stdout}`;
}

/**
 * The ports open from anywhere as members of our sets, written as the classic UFW tuple of ours that
 * would open them, so a test can say "these ports are open by moshwall" whichever way UFW does it.
 */
export async function memberTuples(lab: Lab): Promise<UfwTuple[]> {
  return (await fastSetMembers(lab)).flatMap((line) => {
    const match = /^add moshwall-any([46]) (\d+)$/.exec(line);
    return match ? [ourTuple(Number(match[2]), match[1] === '4' ? 'v4' : 'v6')] : [];
  });
}
