import type { AppliedChange, Backend, BackendProbe, FirewallRule, RuleSpec } from './types.ts';

/** A firewall manager that must not be bypassed by writing rules underneath it. */
export interface Manager {
  name: string;
  /** True when it is running now (e.g. firewalld's daemon). */
  running: () => Promise<boolean>;
}

/** Which candidate auto-detection picks for a set of probes, and why (doctor prints the reason). */
export function chooseBackend(probes: { name: string; probe: BackendProbe }[]): {
  index: number;
  reason: string;
} {
  const active = probes.findIndex((entry) => entry.probe.installed && entry.probe.active);
  if (active >= 0) {
    const skipped = probes
      .slice(0, active)
      .map((entry) => `${entry.name} ${entry.probe.installed ? 'inactive' : 'missing'}`);
    return {
      index: active,
      reason: `${probes[active]?.name} is active${skipped.length ? ` (${skipped.join(', ')})` : ''}`,
    };
  }
  const installed = probes.findIndex((entry) => entry.probe.installed);
  if (installed >= 0)
    return { index: installed, reason: `no firewall is active; ${probes[installed]?.name} is installed` };
  return { index: -1, reason: `none of ${probes.map((entry) => entry.name).join(', ')} is usable` };
}

/**
 * `backend = "auto"`: UFW if active, else nftables, else iptables (in the order given). A running
 * manager such as firewalld makes it refuse: rules written underneath it would be in the wrong place.
 * The choice is made at the first probe and kept for the life of this object.
 */
export function createAutoBackend(candidates: Backend[], managers: Manager[]): Backend {
  let chosen: Backend | undefined;
  let reason = '';
  const need = (): Backend => {
    if (!chosen) throw new Error('auto backend used before probe()');
    return chosen;
  };
  return {
    get name() {
      return chosen ? chosen.name : 'auto';
    },
    async probe(): Promise<BackendProbe> {
      for (const manager of managers) {
        if (await manager.running()) {
          return {
            installed: false,
            active: false,
            ipv6: false,
            detail: [
              `${manager.name} is running and moshwall has no ${manager.name} backend yet; set backend explicitly`,
            ],
          };
        }
      }
      const probes = await Promise.all(
        candidates.map(async (backend) => ({ name: backend.name, backend, probe: await backend.probe() })),
      );
      const choice = chooseBackend(probes);
      reason = choice.reason;
      const picked = probes[choice.index];
      if (!picked) return { installed: false, active: false, ipv6: false, detail: [`auto: ${reason}`] };
      chosen = picked.backend;
      return { ...picked.probe, detail: [`auto: ${reason}`, ...picked.probe.detail] };
    },
    listRules: async (): Promise<FirewallRule[]> => need().listRules(),
    allow: async (specs: RuleSpec[]): Promise<AppliedChange[]> => need().allow(specs),
    revoke: async (specs: RuleSpec[]): Promise<AppliedChange[]> => need().revoke(specs),
    changeToken: () => chosen?.changeToken?.() ?? '',
    watchChanges: (onChange: (what: string) => void) => chosen?.watchChanges?.(onChange) ?? { close() {} },
  };
}
