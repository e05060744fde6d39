import type { AppliedChange, Backend, BackendProbe } from '../firewall.ts';
import type { FirewallRule, RuleSpec } from '../rules.ts';

/** A firewall manager that must not be bypassed by writing rules underneath it. */
export interface Manager {
  name: string;
  /** True when it is running now (e.g. firewalld's daemon). */
  running: () => Promise<boolean>;
}

/** Firewall managers: each owns the tables below it, so two running at once leave no right place for a rule. */
const MANAGERS = new Set(['ufw', 'firewalld']);
/** Candidates that can do nothing while their daemon is stopped: never the "installed" fallback. */
const NEEDS_RUNNING = new Set(['firewalld']);

/** One line per candidate for doctor: "ufw: active", "firewalld: not installed (…)". */
function candidateLine(entry: { name: string; probe: BackendProbe }): string {
  const { installed, active, detail } = entry.probe;
  const state = !installed ? 'not usable' : active ? 'active' : 'installed, inactive';
  const why = !installed && detail[0] !== undefined ? ` (${detail[0]})` : '';
  return `auto candidate ${entry.name}: ${state}${why}`;
}

/**
 * Which candidate auto-detection picks for a set of probes (in order of preference), and why (doctor
 * prints the reason and one line per candidate). Two active managers (UFW and firewalld) is a refusal.
 */
export function chooseBackend(probes: { name: string; probe: BackendProbe }[]): {
  index: number;
  reason: string;
  candidates: string[];
} {
  const candidates = probes.map(candidateLine);
  const managers = probes.filter(
    (entry) => MANAGERS.has(entry.name) && entry.probe.installed && entry.probe.active,
  );
  if (managers.length > 1) {
    const names = managers.map((entry) => entry.name).join(' and ');
    return {
      index: -1,
      reason:
        `${names} are both active: each manages the firewall on its own, so a rule made through one ` +
        'could sit where the other never looks; stop one of them, or set backend explicitly',
      candidates,
    };
  }
  const active = probes.findIndex((entry) => entry.probe.installed && entry.probe.active);
  if (active >= 0) {
    const skipped = probes
      .slice(0, active)
      .map((entry) => `${entry.name} ${entry.probe.installed ? 'inactive' : 'missing'}`);
    const verb = probes[active]?.name === 'firewalld' ? 'is running' : 'is active';
    return {
      index: active,
      reason: `${probes[active]?.name} ${verb}${skipped.length ? ` (${skipped.join(', ')})` : ''}`,
      candidates,
    };
  }
  const installed = probes.findIndex((entry) => entry.probe.installed && !NEEDS_RUNNING.has(entry.name));
  if (installed >= 0)
    return {
      index: installed,
      reason: `no firewall is active; ${probes[installed]?.name} is installed`,
      candidates,
    };
  return {
    index: -1,
    reason: `none of ${probes.map((entry) => entry.name).join(', ')} is usable`,
    candidates,
  };
}

/**
 * `backend = "auto"`: UFW if active, else firewalld if running, else nftables, else iptables (in the
 * order given). firewalld comes before nftables and iptables, so while it runs their rules, which would
 * sit under firewalld's own tables, are never chosen. A running `managers` entry (one moshwall has no
 * candidate for) makes it refuse. The choice is made at the first probe and kept for this object's life.
 */
export function createAutoBackend(candidates: Backend[], managers: Manager[] = []): Backend {
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
      if (!picked) {
        return {
          installed: false,
          active: false,
          ipv6: false,
          detail: [`auto: ${reason}`, ...choice.candidates],
        };
      }
      chosen = picked.backend;
      return { ...picked.probe, detail: [`auto: ${reason}`, ...choice.candidates, ...picked.probe.detail] };
    },
    listRules: async (): Promise<FirewallRule[]> => need().listRules(),
    allow: async (specs: RuleSpec[]): Promise<AppliedChange[]> => need().allow(specs),
    revoke: async (specs: RuleSpec[]): Promise<AppliedChange[]> => need().revoke(specs),
    changeToken: () => chosen?.changeToken?.() ?? '',
    watchChanges: (onChange: (what: string) => void) => chosen?.watchChanges?.(onChange) ?? { close() {} },
  };
}
