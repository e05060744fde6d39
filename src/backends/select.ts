import type { Config } from '../config.ts';
import type { LineWatcher, Runner } from '../exec.ts';
import type { Backend } from '../firewall.ts';
import { createAutoBackend } from './auto.ts';
import { createFirewalldBackend } from './firewalld.ts';
import { createIptablesBackend } from './iptables.ts';
import { createNftablesBackend } from './nftables.ts';
import { createUfwBackend } from './ufw.ts';

/**
 * The backend the config names, built over `runner` (auto: UFW, then firewalld, nftables, iptables);
 * `watcher` starts the long-running children some backends watch their firewall with; `host` says
 * what the backends may use of the running kernel (nftables: its release, see kernelUpdatesTimeouts).
 */
export function createBackend(
  config: Config,
  runner: Runner,
  watcher?: LineWatcher,
  host: { kernelRelease?: string } = {},
): Backend {
  const timeoutMs = config.commandTimeoutMs;
  // ufw_fast_path: absent means "auto"; "off" means classic rules (no fastPath option).
  const fastPath = config.ufwFastPath ?? 'auto';
  const ufw = () =>
    createUfwBackend({
      runner,
      timeoutMs,
      ...(fastPath === 'off' ? {} : { fastPath }),
      ...(watcher === undefined ? {} : { watcher }),
    });
  const nftables = () =>
    createNftablesBackend({
      runner,
      timeoutMs,
      ...(watcher === undefined ? {} : { watcher }),
      ...(config.nftablesTable ? { table: config.nftablesTable } : {}),
      ...(config.nftablesChain ? { chain: config.nftablesChain } : {}),
      ...(host.kernelRelease === undefined ? {} : { kernelRelease: host.kernelRelease }),
    });
  const iptables = () =>
    createIptablesBackend({
      runner,
      timeoutMs,
      ...(watcher === undefined ? {} : { watcher }),
      ...(config.iptablesVariant ? { variant: config.iptablesVariant } : {}),
    });
  const firewalld = () =>
    createFirewalldBackend({
      runner,
      timeoutMs,
      ...(config.firewalldZone ? { zone: config.firewalldZone } : {}),
      ...(watcher ? { watcher } : {}),
    });
  switch (config.backend) {
    case 'ufw':
      return ufw();
    case 'nftables':
      return nftables();
    case 'iptables':
      return iptables();
    case 'firewalld':
      return firewalld();
    case 'auto':
      return createAutoBackend([ufw(), firewalld(), nftables(), iptables()]);
  }
}
