import { runDaemon } from '../../daemon/daemon.ts';
import { reportFlowTool } from '../../engine.ts';
import { createLogger } from '../../log.ts';
import type { Command } from '../command.ts';

export const daemonCommand: Command = {
  name: 'daemon',
  summary: 'Keep the firewall in step with mosh sessions, and answer the mosh-server shim',
  description: `Runs until SIGTERM, normally under systemd (see deploy/moshwall.service). At start it
reconciles once, which sweeps rules of ours left by a crash or reboot. Then it polls
/proc/net/udp{,6} every poll_interval_ms and reconciles only when the sockets in the range changed,
when the firewall's rule files changed (an admin's edit or reload), or every resync_interval_ms
(there the firewall is always listed and repaired; every process is walked again at least every
10th time, the watch below covers the time between). Between reconciles it watches each open
session's mosh-server every watch_interval_ms (a tracer attached, its uid changed, its socket held
by another process) and reconciles at once on a change.
It serves socket_path for the shim: a request is only a nudge, the daemon checks /proc itself and
answers once the port's rule is in place. SIGHUP reloads the config (a bad one is reported and the
old one kept). SIGTERM keeps live sessions' rules (on_stop = "keep") or removes every rule of ours
(on_stop = "flush"). Every rule it removes also has its port's conntrack entries deleted (conntrack(8);
its absence is logged at start). Logs one line per event to stderr (journald).`,
  options: [],
  needsRoot: true,
  async run(context) {
    const log = createLogger(context.err, context.verbose ? 'debug' : 'info');
    const deps = context.daemon(context.config, log);
    // Once at start: without conntrack(8), a closed port's old flows pass until they time out.
    await reportFlowTool(deps.makeEngine(deps.config));
    return runDaemon(deps);
  },
};
