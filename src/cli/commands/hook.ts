import { MoshwallError } from '../../errors.ts';
import type { Command } from '../command.ts';

export const hookCommand: Command = {
  name: 'hook',
  summary: 'Login-hook mode: return at once, watch briefly in the background',
  description: `For hosts without the daemon: put \`sudo -n moshwall hook\` in a login script (and
\`moshwall install --sudoers\` to allow exactly that). It returns at once, so it never slows a login,
and leaves a watcher running in the background for hook_watch_ms that reconciles whenever the UDP
sockets in the range change, so the mosh-server being started gets its port. One watcher serves all
logins; each hook extends its deadline. It costs what the daemon's poll costs: the client's first
packet may arrive before the rule and then needs a re-send (about 3 s). The daemon with the shim has
no such cost; prefer it where you can run a service.`,
  options: [
    { name: 'watch', kind: 'flag', description: 'be the background watcher (started by the hook itself)' },
    {
      name: 'holding-lock',
      kind: 'flag',
      description: "with --watch: fd 3 is the watcher's lock, already taken by the hook",
    },
  ],
  needsRoot: true,
  async run(context, options) {
    if (options.watch === true) {
      await context.host.watchHook(context.config, context.log, options['holding-lock'] === true);
      return 0;
    }
    try {
      await context.host.startHook(context.config, context.selfPath, context.configPath);
    } catch (error) {
      // This runs inside a user's login: one line saying what failed, never a stack trace.
      if (error instanceof MoshwallError) throw error;
      throw new MoshwallError('EINTERNAL', 'the login hook could not start its watcher', { cause: error });
    }
    return 0;
  },
};
