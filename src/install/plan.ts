import { MoshwallError } from '../errors.ts';
import { isOurSysctlFile, PTRACE_SYSCTL_FILE, PTRACE_SYSCTL_TEXT } from '../ptrace.ts';
import { PERL_SHIM } from '../shim/perl-shim.generated.ts';
import { EXAMPLE_CONFIG, systemdUnit } from './assets.ts';
import type { Step } from './steps.ts';
import { type HookFacts, hookInstalled, planHookInstall, planHookRemoval } from './ufw-hook.ts';

export { describeStep, type Step } from './steps.ts';

/** Where `moshwall install` puts things. */
export interface InstallLayout {
  libDir: string;
  bundle: string;
  /** package.json beside the bundle that marks it an ES module. */
  moduleMarker: string;
  command: string;
  shim: string;
  /** The perl shim the shim link points at where perl is (see src/shim/mosh-server.pl). */
  perlShim: string;
  unit: string;
  configDir: string;
  config: string;
  sudoers: string;
  manifest: string;
  /** UFW's config directory (the fast-path hook's files). */
  ufwDir: string;
  /** The sysctl.d drop-in of `install --ptrace-scope`. */
  ptraceSysctl: string;
}

/** The layout for a root-owned prefix (default /usr/local), the unit under /etc/systemd/system. */
export function layoutFor(prefix = '/usr/local'): InstallLayout {
  const libDir = `${prefix}/lib/moshwall`;
  return {
    libDir,
    bundle: `${libDir}/moshwall.js`,
    moduleMarker: `${libDir}/package.json`,
    command: `${prefix}/sbin/moshwall`,
    shim: `${prefix}/bin/mosh-server`,
    perlShim: `${libDir}/mosh-server`,
    unit: '/etc/systemd/system/moshwall.service',
    configDir: '/etc/moshwall',
    config: '/etc/moshwall/moshwall.toml',
    sudoers: '/etc/sudoers.d/moshwall',
    manifest: `${libDir}/installed.json`,
    ufwDir: '/etc/ufw',
    ptraceSysctl: PTRACE_SYSCTL_FILE,
  };
}

/** What a path is now, as far as install cares. */
export type PathState =
  | { kind: 'missing' }
  | { kind: 'file' }
  | { kind: 'directory' }
  | { kind: 'symlink'; target: string };

/** What install records so that uninstall removes exactly what it made. */
export interface Manifest {
  version: 1;
  paths: string[];
  configCreated: boolean;
}

export interface InstallFacts {
  layout: InstallLayout;
  /** The running bundle (what gets copied) and the node binary that runs it. */
  selfPath: string;
  nodePath: string;
  /** Why nodePath could be changed by someone other than root (the StrictModes check), if it could. */
  nodeProblem?: string | undefined;
  state: (path: string) => PathState;
  systemdRunning: boolean;
  /**
   * The perl that runs the shim (Debian's perl-base, Essential), or absent where there is none: then
   * the shim is the bundle itself under Node (50-70 ms slower per connect).
   */
  perl?: string | undefined;
  /** Whether the kernel has Yama (kernel.yama.ptrace_scope); absent: not known, taken as yes. */
  yama?: boolean;
  /** Text and mode of a file (UFW's hook files), undefined when missing; absent: no such file anywhere. */
  readText?: HookFacts['readText'];
  modeOf?: HookFacts['modeOf'];
}

/** The hook facts within the install facts. */
function hookFacts(facts: Omit<InstallFacts, 'selfPath' | 'nodePath'>): HookFacts {
  return {
    ufwDir: facts.layout.ufwDir,
    readText: facts.readText ?? (() => undefined),
    modeOf: facts.modeOf ?? (() => undefined),
  };
}

/** The PATH root's commands get; sudo gives it to our command whatever the caller's PATH was. */
export const SECURE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The sudoers Defaults line that fixes PATH and resets the environment for our command alone. */
export function sudoersDefaults(command: string): string {
  return `Defaults!${command} secure_path="${SECURE_PATH}", env_reset, !setenv`;
}

/** The sudoers drop-in that lets every user run exactly `moshwall hook`, and nothing else. */
export function sudoersText(command: string): string {
  return `# Written by moshwall install --sudoers: lets login scripts run \`sudo -n ${command} hook\`.
# Only that exact command line is allowed (sudoers matches the arguments exactly). Where sudo's own
# secure_path is unset (Arch, Gentoo), sudo would keep the caller's PATH: the Defaults line fixes it for
# this command, and the installed file names its interpreter by absolute path anyway.
${sudoersDefaults(command)}
ALL ALL=(root) NOPASSWD: ${command} hook
`;
}

/**
 * The steps of `install --ptrace-scope` ('write': the sysctl.d drop-in, in effect from the next boot;
 * 'apply': also now, through `sysctl -p` on exactly that file). Without the option a drop-in of ours
 * from an earlier install is kept (and stays listed, so uninstall removes it). Never by default.
 */
function planPtraceScope(
  facts: InstallFacts,
  wanted: 'write' | 'apply' | undefined,
): { paths: string[]; steps: Step[] } {
  const path = facts.layout.ptraceSysctl;
  const existing = facts.readText?.(path);
  const ours = existing !== undefined && isOurSysctlFile(existing);
  if (wanted === undefined) {
    if (!ours) return { paths: [], steps: [] };
    return { paths: [path], steps: [{ kind: 'note', text: `${path} (ptrace_scope 2) kept as it is` }] };
  }
  if (facts.yama === false) {
    throw new MoshwallError(
      'EINSTALL',
      'this kernel has no Yama (no /proc/sys/kernel/yama/ptrace_scope): --ptrace-scope cannot work here; install without it (see the ptrace boundary in the README)',
    );
  }
  if (existing !== undefined && !ours) {
    throw new MoshwallError(
      'EINSTALL',
      `${path} exists and is not moshwall's; refusing to overwrite it (move it away first)`,
      { context: { path } },
    );
  }
  const steps: Step[] = [{ kind: 'write', path, content: PTRACE_SYSCTL_TEXT, mode: 0o644 }];
  if (wanted === 'apply') steps.push({ kind: 'run', argv: ['sysctl', '-p', path] });
  else
    steps.push({ kind: 'note', text: `${path} takes effect at the next boot (--apply-ptrace-scope: now)` });
  return { paths: [path], steps };
}

/** True when path is missing or a link moshwall made (pointing at our bundle or our perl shim). */
function isOursOrMissing(state: PathState, layout: InstallLayout): boolean {
  return (
    state.kind === 'missing' ||
    (state.kind === 'symlink' && (state.target === layout.bundle || state.target === layout.perlShim))
  );
}

/**
 * The shim: the perl script (its first line naming the perl found) and the link to it, or, without
 * perl, the link to the bundle (which runs as the shim when started as mosh-server).
 */
function shimSteps(facts: InstallFacts): Step[] {
  const { layout, perl } = facts;
  if (perl === undefined) return [{ kind: 'symlink', target: layout.bundle, path: layout.shim }];
  const script = PERL_SHIM.replace(/^#!.*\n/, `#!${perl}\n`);
  return [
    { kind: 'write', path: layout.perlShim, content: script, mode: 0o755 },
    { kind: 'symlink', target: layout.perlShim, path: layout.shim },
  ];
}

/** The steps of `moshwall install`; refuses to replace a mosh-server or command that is not ours. */
export function planInstall(
  facts: InstallFacts,
  options: { sudoers: boolean; ufwFastPath?: boolean; ptraceScope?: 'write' | 'apply' },
): Step[] {
  const { layout } = facts;
  if (facts.nodeProblem !== undefined) {
    throw new MoshwallError(
      'EUNSAFE',
      `refusing to install: ${facts.nodeProblem}; moshwall would run as root through it (use a node owned by root, e.g. the distribution's)`,
      { context: { node: facts.nodePath } },
    );
  }
  for (const path of [layout.shim, layout.command]) {
    if (!isOursOrMissing(facts.state(path), layout)) {
      throw new MoshwallError(
        'EINSTALL',
        `${path} exists and is not moshwall's; refusing to overwrite it (move it away first)`,
        { context: { path } },
      );
    }
  }
  const ptrace = planPtraceScope(facts, options.ptraceScope);
  const configCreated = facts.state(layout.config).kind === 'missing';
  const paths = [
    layout.bundle,
    layout.moduleMarker,
    layout.command,
    ...(facts.perl === undefined ? [] : [layout.perlShim]),
    layout.shim,
    layout.unit,
    ...(options.sudoers ? [layout.sudoers] : []),
    ...ptrace.paths,
  ];
  const manifest: Manifest = { version: 1, paths, configCreated };
  const steps: Step[] = [
    { kind: 'mkdir', path: layout.libDir, mode: 0o755 },
    // Run by the node checked above, by absolute path: never a `node` found on the caller's PATH.
    { kind: 'copy', from: facts.selfPath, to: layout.bundle, mode: 0o755, interpreter: facts.nodePath },
    // The bundle is an ES module: Node 18 reads a .js file as one only under {"type":"module"}.
    { kind: 'write', path: layout.moduleMarker, content: '{ "type": "module" }\n', mode: 0o644 },
    { kind: 'symlink', target: layout.bundle, path: layout.command },
    ...shimSteps(facts),
    { kind: 'write', path: layout.unit, content: systemdUnit(facts.nodePath, layout.bundle), mode: 0o644 },
    { kind: 'mkdir', path: layout.configDir, mode: 0o755 },
  ];
  if (configCreated) steps.push({ kind: 'write', path: layout.config, content: EXAMPLE_CONFIG, mode: 0o644 });
  else steps.push({ kind: 'note', text: `${layout.config} exists: kept as it is` });
  if (options.sudoers)
    steps.push({ kind: 'sudoers', path: layout.sudoers, content: sudoersText(layout.command) });
  steps.push(...ptrace.steps);
  // The UFW fast path's hook follows the config: added when it is on, removed when it was switched off.
  if (options.ufwFastPath === true) steps.push(...planHookInstall(hookFacts(facts)));
  else if (hookInstalled(hookFacts(facts))) steps.push(...planHookRemoval(hookFacts(facts)));
  steps.push({
    kind: 'write',
    path: layout.manifest,
    content: `${JSON.stringify(manifest, null, 2)}\n`,
    mode: 0o644,
  });
  if (facts.systemdRunning) {
    steps.push({ kind: 'run', argv: ['systemctl', 'daemon-reload'] });
    steps.push({ kind: 'run', argv: ['systemctl', 'enable', '--now', 'moshwall.service'] });
  } else {
    steps.push({
      kind: 'note',
      text: `systemd is not running here: start \`${layout.command} daemon\` under your init system, or run \`${layout.command} sync\` from cron`,
    });
  }
  return steps;
}

/**
 * The steps of `install --ufw-hook-only` (add the fast path's hook, or remove it when the config has it off)
 * and `uninstall --ufw-hook-only` (remove it): for hosts where the package manager installed moshwall.
 */
export function planHookOnly(
  facts: Omit<InstallFacts, 'selfPath' | 'nodePath'>,
  action: 'install' | 'uninstall',
  ufwFastPath: boolean,
): Step[] {
  if (action === 'install' && ufwFastPath) return planHookInstall(hookFacts(facts));
  if (hookInstalled(hookFacts(facts))) return planHookRemoval(hookFacts(facts));
  return [{ kind: 'note', text: `no moshwall fast-path hook in ${facts.layout.ufwDir}: nothing to do` }];
}

/** The steps of `moshwall uninstall`: stop, flush our rules, remove what the manifest lists (if still ours). */
export function planUninstall(
  facts: Omit<InstallFacts, 'selfPath' | 'nodePath'>,
  manifest: Manifest,
  options: { purge: boolean },
): Step[] {
  const { layout } = facts;
  const steps: Step[] = [];
  if (facts.systemdRunning)
    steps.push({ kind: 'run', argv: ['systemctl', 'disable', '--now', 'moshwall.service'] });
  steps.push({ kind: 'flush' });
  if (hookInstalled(hookFacts(facts))) steps.push(...planHookRemoval(hookFacts(facts)));
  for (const path of manifest.paths) {
    const state = facts.state(path);
    if (state.kind === 'missing') continue;
    if (state.kind === 'symlink' && !isOursOrMissing(state, layout)) {
      steps.push({ kind: 'note', text: `${path} now points elsewhere (${state.target}): left alone` });
      continue;
    }
    if (path !== layout.bundle) steps.push({ kind: 'remove', path });
  }
  if (manifest.paths.includes(layout.ptraceSysctl) && facts.state(layout.ptraceSysctl).kind === 'file') {
    steps.push({
      kind: 'note',
      text: 'the running kernel keeps kernel.yama.ptrace_scope until reboot (`sysctl -w kernel.yama.ptrace_scope=1` lowers it now; 3 cannot be lowered)',
    });
  }
  if (options.purge && facts.state(layout.config).kind === 'file')
    steps.push({ kind: 'remove', path: layout.config });
  else if (facts.state(layout.config).kind === 'file') {
    steps.push({ kind: 'note', text: `${layout.config} kept (uninstall --purge removes it)` });
  }
  steps.push({ kind: 'remove', path: layout.manifest });
  steps.push({ kind: 'remove', path: layout.bundle });
  steps.push({ kind: 'remove', path: layout.libDir });
  if (options.purge) steps.push({ kind: 'remove', path: layout.configDir });
  if (facts.systemdRunning) steps.push({ kind: 'run', argv: ['systemctl', 'daemon-reload'] });
  return steps;
}
