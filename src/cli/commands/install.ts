import type { Config } from '../../config.ts';
import { MoshwallError } from '../../errors.ts';
import {
  describeStep,
  layoutFor,
  planHookOnly,
  planInstall,
  planUninstall,
  type Step,
} from '../../install/plan.ts';
import type { Command, CommandContext } from '../command.ts';

/** True when the config asks for the UFW fast path on a backend that can be UFW. */
function fastPathWanted(config: Config): boolean {
  return config.ufwFastPath === 'ipset' && (config.backend === 'ufw' || config.backend === 'auto');
}

/** Prints the steps, and carries them out unless this is a dry run. */
async function carryOut(context: CommandContext, steps: Step[], dryRun: boolean): Promise<number> {
  for (const step of steps) {
    if (dryRun || step.kind !== 'note') context.out(`${dryRun ? 'would ' : ''}${describeStep(step)}`);
  }
  if (!dryRun) await context.host.applySteps(steps, context.config, context.log, context.out);
  return 0;
}

/** The --ptrace-scope / --apply-ptrace-scope choice; nothing when neither was given. */
function ptraceOption(options: Record<string, string | boolean | undefined>): {
  ptraceScope?: 'write' | 'apply';
} {
  if (options['apply-ptrace-scope'] === true) return { ptraceScope: 'apply' };
  if (options['ptrace-scope'] === true) return { ptraceScope: 'write' };
  return {};
}

export const installCommand: Command = {
  name: 'install',
  summary: 'Install moshwall on this host: the command, the shim, the daemon unit, a config',
  description: `Copies this bundle to /usr/local/lib/moshwall/moshwall.js, links /usr/local/sbin/moshwall
and the shim /usr/local/bin/mosh-server to it, writes /etc/systemd/system/moshwall.service, and a
commented default /etc/moshwall/moshwall.toml if none exists; then enables and starts the daemon when
systemd runs here (otherwise it says what to do). It refuses to replace a /usr/local/bin/mosh-server
that is not moshwall's. --sudoers also writes /etc/sudoers.d/moshwall allowing exactly
\`moshwall hook\`, checked with \`visudo -c\` first. What it made is listed in
/usr/local/lib/moshwall/installed.json, so uninstall removes exactly that. With ufw_fast_path = "ipset"
it also adds the fast path's hook (marked blocks in /etc/ufw/after.rules, after6.rules and before.init,
moshwall's ipsets) and runs \`ufw reload\`; with it off, a hook left from before is removed.
Never by default: --ptrace-scope writes /etc/sysctl.d/60-moshwall-ptrace.conf setting Yama's
kernel.yama.ptrace_scope to 2 from the next boot (--apply-ptrace-scope also sets it now), so no user
can write into their own mosh-server once its port is open; it costs users the ability to debug their
own processes (gdb -p, strace -p). Uninstall removes the file.`,
  options: [
    { name: 'dry-run', kind: 'flag', description: 'show every file and command, change nothing' },
    { name: 'sudoers', kind: 'flag', description: 'also allow `sudo -n moshwall hook` for login scripts' },
    {
      name: 'ufw-hook-only',
      kind: 'flag',
      description: 'only add (or, with ufw_fast_path off, remove) the UFW fast-path hook',
    },
    {
      name: 'ptrace-scope',
      kind: 'flag',
      description:
        'also write /etc/sysctl.d/60-moshwall-ptrace.conf (kernel.yama.ptrace_scope = 2, from the next boot): users can then no longer debug their own processes, nor inject code into their mosh-server',
    },
    {
      name: 'apply-ptrace-scope',
      kind: 'flag',
      description: 'as --ptrace-scope, and set it now too (sysctl -p on that file)',
    },
  ],
  needsRoot: true,
  async run(context, options) {
    const layout = layoutFor();
    if (options['ufw-hook-only'] === true) {
      const facts = context.host.installFacts(layout, context.selfPath);
      const steps = planHookOnly(facts, 'install', fastPathWanted(context.config));
      return carryOut(context, steps, options['dry-run'] === true);
    }
    const steps = planInstall(context.host.installFacts(layout, context.selfPath), {
      sudoers: options.sudoers === true,
      ufwFastPath: fastPathWanted(context.config),
      ...ptraceOption(options),
    });
    return carryOut(context, steps, options['dry-run'] === true);
  },
};

export const uninstallCommand: Command = {
  name: 'uninstall',
  summary: 'Remove what install made, and every firewall rule of ours',
  description: `Stops and disables the daemon (when systemd runs), removes every firewall rule of ours,
and removes exactly the files install recorded, leaving any that someone has since replaced. The
UFW fast path's blocks are cut out of /etc/ufw (the files are as they were before install), UFW is
reloaded and moshwall's ipsets destroyed. The config in /etc/moshwall is kept unless --purge.`,
  options: [
    { name: 'dry-run', kind: 'flag', description: 'show every file and command, change nothing' },
    { name: 'purge', kind: 'flag', description: 'also remove /etc/moshwall/moshwall.toml' },
    { name: 'ufw-hook-only', kind: 'flag', description: 'only remove the UFW fast-path hook and its ipsets' },
  ],
  needsRoot: true,
  async run(context, options) {
    const layout = layoutFor();
    if (options['ufw-hook-only'] === true) {
      const facts = context.host.installFacts(layout, context.selfPath);
      return carryOut(context, planHookOnly(facts, 'uninstall', false), options['dry-run'] === true);
    }
    const manifest = context.host.readManifest(layout);
    if (!manifest)
      throw new MoshwallError(
        'EUSAGE',
        `${layout.manifest} not found: moshwall was not installed by \`moshwall install\``,
      );
    const facts = context.host.installFacts(layout, context.selfPath);
    const steps = planUninstall(facts, manifest, { purge: options.purge === true });
    return carryOut(context, steps, options['dry-run'] === true);
  },
};
