import type { Config } from './config.ts';
import type { FlowToolProbe } from './conntrack.ts';
import type { BackendProbe } from './firewall.ts';
import type { MetricsProbe } from './metrics/probe.ts';
import type { UninspectedProcess } from './model.ts';
import { anywhere } from './net.ts';
import { ptraceFinding } from './ptrace.ts';
import type { FirewallRule } from './rules.ts';
import { touchesRange, uninspectedText } from './status.ts';

/** One line of `moshwall doctor`. */
export interface Finding {
  level: 'ok' | 'warn' | 'fail';
  check: string;
  message: string;
  fix?: string;
}

/** What doctor looked at; gathered at the edge, judged here. */
export interface DoctorFacts {
  isRoot: boolean;
  config: Config;
  backendName: string;
  probe: BackendProbe;
  /** The firewall's rules, or the error listing them raised. */
  rules: FirewallRule[] | Error;
  /** Verdict on config.moshServer: undefined when it is genuine, else why not. */
  moshServerProblem: string | undefined;
  /** True when the host has any IPv6 address besides loopback. */
  hostHasIpv6: boolean;
  /** Whether conntrack(8) can delete a closed port's flows; undefined when not checked. */
  conntrack?: FlowToolProbe | undefined;
  /** Yama's ptrace_scope (undefined: no Yama); absent when not looked at. */
  ptrace?: { scope: number | undefined };
  /** Processes a scan could not read (or the error the scan raised); undefined when not scanned. */
  uninspected?: UninspectedProcess[] | Error;
  /** kernel.io_uring_disabled (0, 1, 2), or null when the kernel has no such setting (io_uring open to all). */
  ioUringDisabled?: number | null;
  /** A look at the metrics endpoint when metrics_listen is set; absent otherwise. */
  metrics?: MetricsProbe;
}

/** Whether the daemon's metrics endpoint answers where metrics_listen says (only when it is set). */
export function metricsFinding(config: Config, probe: MetricsProbe | undefined): Finding | undefined {
  const listen = config.metricsListen;
  if (listen === undefined || probe === undefined) return undefined;
  const where = listen.host.includes(':')
    ? `[${listen.host}]:${listen.port}`
    : `${listen.host}:${listen.port}`;
  if (probe.listening)
    return { level: 'ok', check: 'metrics', message: `metrics endpoint ${where} ${probe.detail}` };
  return {
    level: 'warn',
    check: 'metrics',
    message: `metrics_listen is ${where} but the endpoint does not answer: ${probe.detail}`,
    fix: 'start or restart the daemon (`systemctl restart moshwall`) and look for metrics-failed in its log',
  };
}

/** True when an allow rule opens every port of the range to anyone, for one family. */
function opensWholeRange(rule: FirewallRule, config: Config): boolean {
  if (rule.ours || rule.action !== 'allow' || rule.direction !== 'in' || rule.interface !== undefined)
    return false;
  if (rule.protocol !== 'udp' && rule.protocol !== 'any') return false;
  if (rule.source !== anywhere(rule.family) || rule.destination !== anywhere(rule.family)) return false;
  const { first, last } = config.portRange;
  return rule.ports === 'any' || rule.ports.some((range) => range.first <= first && range.last >= last);
}

/** Whether closed ports' flows can be deleted: a warning with the fix when conntrack(8) is missing. */
function conntrackFinding(probe: FlowToolProbe): Finding {
  if (probe.available) {
    return {
      level: 'ok',
      check: 'conntrack',
      message: `conntrack ${probe.version ?? '(version unknown)'} is installed: a closed port's flows are deleted`,
    };
  }
  return {
    level: 'warn',
    check: 'conntrack',
    message: probe.problem ?? 'conntrack cannot be run',
    ...(probe.fix === undefined ? {} : { fix: probe.fix }),
  };
}

/** The findings for a set of facts, most important first within each check. */
export function diagnose(facts: DoctorFacts): Finding[] {
  const findings: Finding[] = [];
  const { config, probe } = facts;
  findings.push(
    facts.isRoot
      ? { level: 'ok', check: 'privileges', message: 'running as root' }
      : {
          level: 'fail',
          check: 'privileges',
          message: 'not running as root: /proc of other users and the firewall cannot be read',
          fix: 'run `sudo moshwall doctor`',
        },
  );
  findings.push({ level: 'ok', check: 'config', message: `loaded from ${config.source}` });
  if (!probe.installed) {
    findings.push({
      level: 'fail',
      check: 'firewall',
      message: `${facts.backendName} is not usable: ${probe.detail.join('; ')}`,
      fix:
        facts.backendName === 'firewalld'
          ? 'install firewalld (apt-get install firewalld) and start it, or choose another backend'
          : `install ${facts.backendName === 'auto' ? 'ufw, firewalld, nftables or iptables' : facts.backendName} (apt-get install ${facts.backendName === 'auto' ? 'nftables' : facts.backendName}), or set backend to one that is installed`,
    });
  } else if (!probe.active) {
    findings.push({
      level: 'warn',
      check: 'firewall',
      message: `${facts.backendName} is installed but inactive: every port is open, moshwall has nothing to do`,
      fix: 'enable the firewall yourself once SSH is allowed (moshwall never enables or disables it)',
    });
  } else {
    findings.push({
      level: 'ok',
      check: 'firewall',
      message: `${facts.backendName} is active (${probe.detail.join('; ')})`,
    });
  }
  for (const problem of probe.problems ?? []) {
    findings.push({ level: 'fail', check: 'fast-path', message: problem });
  }
  findings.push(
    facts.moshServerProblem === undefined
      ? {
          level: 'ok',
          check: 'mosh-server',
          message: `${config.moshServer} is root-owned and not writable by others`,
        }
      : {
          level: 'fail',
          check: 'mosh-server',
          message: facts.moshServerProblem,
          fix: 'install mosh from your distribution (apt-get install mosh) or set mosh_server in the config',
        },
  );
  if (facts.ptrace) findings.push(ptraceFinding(facts.ptrace.scope));
  if (probe.installed && facts.hostHasIpv6 && !probe.ipv6) {
    findings.push({
      level: 'warn',
      check: 'ipv6',
      message:
        'this host has IPv6 addresses but the firewall does not manage IPv6: mosh over IPv6 is not filtered',
      fix:
        facts.backendName === 'ufw'
          ? 'set IPV6=yes in /etc/default/ufw, then `ufw reload` at a time of your choosing'
          : 'filter IPv6 too (an inet or ip6 table, or ip6tables), or moshwall cannot protect mosh over IPv6',
    });
  } else {
    findings.push({
      level: 'ok',
      check: 'ipv6',
      message: `IPv6 ${probe.ipv6 ? 'managed' : 'not in use'} by the firewall`,
    });
  }
  if (facts.conntrack !== undefined) findings.push(conntrackFinding(facts.conntrack));
  findings.push(...uninspectedFindings(facts.uninspected));
  if (facts.ioUringDisabled !== undefined) findings.push(ioUringFinding(facts.ioUringDisabled));
  const metrics = metricsFinding(config, facts.metrics);
  if (metrics) findings.push(metrics);
  if (facts.rules instanceof Error) {
    findings.push({
      level: 'fail',
      check: 'rules',
      message: `cannot list the firewall's rules: ${facts.rules.message}`,
    });
    return findings;
  }
  const rangeText = `${config.portRange.first}:${config.portRange.last}`;
  for (const rule of facts.rules.filter((candidate) => opensWholeRange(candidate, config))) {
    findings.push({
      level: 'warn',
      check: 'range',
      message: `the whole mosh range ${rangeText}/udp is already open to anyone (${rule.family}) by: ${rule.raw}`,
      fix: 'remove that rule once moshwall runs; until then any process can listen there past the firewall',
    });
  }
  const shadowing = facts.rules.filter(
    (rule) =>
      !rule.ours &&
      rule.afterOurs !== true &&
      rule.action !== 'allow' &&
      touchesRange(rule, config.portRange),
  );
  // One finding per rule text (an inet table's rule is listed once per family).
  for (const rule of new Map(shadowing.map((each) => [each.raw, each])).values()) {
    findings.push({
      level: 'warn',
      check: 'range',
      message: `a rule that is not an allow matches UDP in ${rangeText}; sessions on its ports cannot connect: ${rule.raw}`,
    });
  }
  if (!findings.some((finding) => finding.check === 'range')) {
    findings.push({
      level: 'ok',
      check: 'range',
      message: `no admin rule opens or blocks ${rangeText}/udp as a whole`,
    });
  }
  return findings;
}

/** One finding per process whose fds could not be read: warn for non-root (their sockets are refused). */
function uninspectedFindings(uninspected: DoctorFacts['uninspected']): Finding[] {
  if (uninspected === undefined) return [];
  if (uninspected instanceof Error) {
    return [{ level: 'fail', check: 'processes', message: `cannot scan /proc: ${uninspected.message}` }];
  }
  const blind = uninspected.filter((each) => !each.root);
  const findings: Finding[] = blind.map((each) => ({
    level: 'warn',
    check: 'processes',
    message: `cannot inspect ${uninspectedText(each)}`,
    fix: 'find what confines that process (an LSM profile, a sandbox); while it runs, its user gets no port',
  }));
  const ignored = uninspected.filter((each) => each.root).map((each) => each.pid);
  findings.push({
    level: 'ok',
    check: 'processes',
    message:
      ignored.length === 0
        ? blind.length === 0
          ? 'the open files of every process could be read'
          : 'the open files of every root process could be read'
        : `root processes whose fds cannot be read are ignored (root gains nothing from a socket): pid ${ignored.join(', ')}`,
  });
  return findings;
}

/**
 * What io_uring means for discovery: a socket registered in a ring whose own fd was registered and
 * closed (IORING_REGISTER_RING_FDS) is in no /proc table, so such a holder cannot be seen.
 */
function ioUringFinding(disabled: number | null): Finding {
  if (disabled === 2)
    return { level: 'ok', check: 'io_uring', message: 'io_uring is disabled (kernel.io_uring_disabled = 2)' };
  if (disabled === 1) {
    return {
      level: 'ok',
      check: 'io_uring',
      message:
        'io_uring is limited to kernel.io_uring_group (kernel.io_uring_disabled = 1): members can hold a socket moshwall cannot see',
    };
  }
  return {
    level: 'warn',
    check: 'io_uring',
    message: `io_uring is open to every user (${disabled === null ? 'this kernel has no kernel.io_uring_disabled' : 'kernel.io_uring_disabled = 0'}): a user with ptrace rights over their mosh-server can hide a copy of its socket in a ring /proc does not show`,
    fix:
      disabled === null
        ? 'a kernel >= 6.6 can switch io_uring off for users (kernel.io_uring_disabled = 2); moshwall never changes kernel settings'
        : 'set kernel.io_uring_disabled = 2 (or 1 with kernel.io_uring_group) in /etc/sysctl.d if nothing here needs it; moshwall never changes it',
  };
}
