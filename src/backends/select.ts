import type { Config } from '../config.ts';
import type { LineWatcher, Runner } from '../exec.ts';
import { createAutoBackend, type Manager } from './auto.ts';
import { createIptablesBackend } from './iptables.ts';
import { createNftablesBackend } from './nftables.ts';
import type { Backend } from './types.ts';
import { createUfwBackend } from './ufw.ts';

/** firewalld as a manager auto-detection must not write underneath: running when `firewall-cmd --state` says so. */
function firewalld(runner: Runner, timeoutMs: number): Manager {
  return {
    name: 'firewalld',
    running: async () => {
      try {
        const result = await runner(['firewall-cmd', '--state'], { timeoutMs });
        return result.exitCode === 0 && result.stdout.trim() === 'running';
      } catch {
        return false;
      }
    },
  };
}

/**
 * The backend the config names, built over `runner` (auto: UFW, then nftables, then iptables);
 * `watcher` starts the long-running children some backends watch their firewall with.
 */
export function createBackend(config: Config, runner: Runner, _watcher?: LineWatcher): Backend {
  const timeoutMs = config.commandTimeoutMs;
  const ufw = () =>
    createUfwBackend({ runner, timeoutMs, ...(config.ufwFastPath ? { fastPath: config.ufwFastPath } : {}) });
  const nftables = () =>
    createNftablesBackend({
      runner,
      timeoutMs,
      ...(config.nftablesTable ? { table: config.nftablesTable } : {}),
      ...(config.nftablesChain ? { chain: config.nftablesChain } : {}),
    });
  const iptables = () =>
    createIptablesBackend({
      runner,
      timeoutMs,
      ...(config.iptablesVariant ? { variant: config.iptablesVariant } : {}),
    });
  switch (config.backend) {
    case 'ufw':
      return ufw();
    case 'nftables':
      return nftables();
    case 'iptables':
      return iptables();
    case 'auto':
      return createAutoBackend([ufw(), nftables(), iptables()], [firewalld(runner, timeoutMs)]);
  }
}
