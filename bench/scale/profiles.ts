// The bench's backends: each one's admin firewall in the lab (the baselines of test/e2e/_firewalls.ts), its
// config lines, how an admin opens the whole range, and how rules of ours are preloaded (see ../scale.ts).
import { fileURLToPath } from 'node:url';
import { createBackend } from '../../src/backends/select.ts';
import { createUfwBackend } from '../../src/backends/ufw.ts';
import { parseConfig } from '../../src/config.ts';
import type { Backend } from '../../src/firewall.ts';
import { LabError } from '../../test/e2e/_exec.ts';
import { installLabFastPath, labFastBackend } from '../../test/e2e/_fastpath.ts';
import { DEBIAN_NFTABLES_CONF, IPTABLES_RULES } from '../../test/e2e/_firewalls.ts';
import { type Lab, type LabOptions, labRunner } from '../../test/e2e/lab.ts';
import type { Request } from '../_scale-changes.ts';

export const RESULTS = fileURLToPath(new URL('../results/scale.md', import.meta.url));
export const WORKER = fileURLToPath(new URL('../_scale-changes.ts', import.meta.url));
export const FAKE_SOURCE = fileURLToPath(new URL('../fixtures/fake-mosh-server.c', import.meta.url));
/** Where the stand-in mosh-server goes in the lab: root-owned all the way up, as moshwall demands. */
export const FAKE_DIR = '/usr/local/lib/moshwall-bench';
export const FAKE = `${FAKE_DIR}/mosh-server`;
export const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi', 'ivan', 'judy'];
/**
 * moshwall's range for the bench. The sessions take ports from FIRST_PORT up, above the ports a real
 * mosh-server picks by itself (60001–60999), so that a real `mosh` still finds one with 1000 of them live.
 */
export const RANGE = '60000:61999';
export const FIRST_PORT = 61000;
export const WIDE_NFT_COMMENT = 'bench-wide-open';

/**
 * One backend as the bench sets it up: the admin firewall of the lab, the config lines moshwall gets,
 * how to open the whole range as an admin would, and how to preload rules of ours. Adding a backend is
 * one more entry in PROFILES.
 */
export interface Profile {
  name: string;
  /** Ports are elements of a set (one change = one set element), not rules of their own. */
  setBased: boolean;
  /** Whether connects are timed (default: set-based backends; slow ones would only time their tool). */
  measuresConnect?: boolean;
  /** Config lines beyond port_range and max_sessions_per_user. */
  config: string[];
  /** Turns the lab's stock UFW into this backend's admin firewall (default-deny, ssh allowed). */
  setUp(lab: Lab): Promise<void>;
  /** Opens (or closes again) the whole port range as an admin rule, for the "wide open" connect. */
  wideOpen(lab: Lab, open: boolean): Promise<void>;
  preload: Request['preload'];
  /** At most this many rules per preload call, where one call of 1000 outlasts command_timeout_ms. */
  preloadBatch?: number;
  /** What the report should say of this backend's figures. */
  note?: string;
  /** The backend the bench lists our rules with from outside the lab (default: from the config lines). */
  listing?(lab: Lab): Backend;
  /** At most this many sessions in the converge (and why), where --sessions would take too long. */
  sessionsCap?: { sessions: number; why: string };
  /** Timed runs at a given count when fewer than --runs are used, and why. */
  runsAt?: Record<string, number>;
  /** How the lab is made beyond its users (e.g. a real firewalld instead of UFW). */
  labOptions?: Pick<LabOptions, 'firewall'>;
}

/** Runs argv as root in the lab's server host, or throws with its output. */
export async function inLab(lab: Lab, argv: string[], input?: string): Promise<string> {
  const result = await lab.runServer(argv, input === undefined ? {} : { input });
  if (result.exitCode !== 0)
    throw new LabError(
      `${argv.join(' ')} in the lab: exit ${result.exitCode}: ${result.stderr}${result.stdout}`,
    );
  return result.stdout;
}

/** The lab without UFW: ufw disabled there and its tables gone (this namespace only). */
export async function dropLabUfw(lab: Lab): Promise<void> {
  await inLab(lab, ['ufw', 'disable']);
  await inLab(lab, ['nft', 'flush', 'ruleset']);
}

/** The UFW admin's "wide open": one `ufw allow` of the whole range (or its delete). */
async function ufwWideOpen(lab: Lab, open: boolean): Promise<void> {
  await inLab(lab, ['ufw', ...(open ? [] : ['delete']), 'allow', `${RANGE}/udp`]);
}

/** The UFW backend over the lab's files (through its holder's root) and tools, classic unless told. */
function labUfwBackend(lab: Lab, fastPath?: 'runtime'): Backend {
  return createUfwBackend({
    runner: labRunner(lab),
    timeoutMs: 30_000,
    rulesDir: lab.serverPath('/etc/ufw'),
    defaultsFile: lab.serverPath('/etc/default/ufw'),
    ...(fastPath === undefined ? {} : { fastPath }),
  });
}

/** The iptables profile of one variant (rules per port, in a chain of ours). */
export function iptablesProfile(variant: 'nft' | 'legacy'): Profile {
  const wide = ['INPUT', '-p', 'udp', '--dport', RANGE, '-j', 'ACCEPT'];
  return {
    name: `iptables-${variant}`,
    setBased: false,
    measuresConnect: true,
    config: ['backend = "iptables"', `iptables_variant = "${variant}"`],
    async setUp(lab) {
      await dropLabUfw(lab);
      await inLab(lab, [`iptables-${variant}-restore`, '-w'], IPTABLES_RULES.v4);
      await inLab(lab, [`ip6tables-${variant}-restore`, '-w'], IPTABLES_RULES.v6);
    },
    async wideOpen(lab, open) {
      await inLab(lab, [`iptables-${variant}`, '-w', open ? '-I' : '-D', ...wide]);
    },
    preload: 'api',
  };
}

export const PROFILES: Profile[] = [
  {
    name: 'ufw',
    setBased: false,
    config: ['backend = "ufw"', 'ufw_fast_path = "off"'],
    async setUp() {},
    wideOpen: ufwWideOpen,
    preload: 'ufw-rules-file',
    listing: (lab) => labUfwBackend(lab),
    // Each ufw run re-reads and rewrites every rule: at 1000 rules one change takes seconds.
    runsAt: { '1000': 20 },
    sessionsCap: {
      sessions: 200,
      why: 'one `ufw allow` / `ufw delete` process per port, each slower the more rules there are (about 0.3 s at 1000): 1000 would take about 5 minutes each way',
    },
  },
  {
    name: 'nftables',
    setBased: true,
    config: ['backend = "nftables"'],
    async setUp(lab) {
      await dropLabUfw(lab);
      await inLab(lab, ['nft', '-f', '-'], DEBIAN_NFTABLES_CONF);
    },
    async wideOpen(lab, open) {
      if (open) {
        await inLab(lab, [
          'nft',
          'add',
          'rule',
          'inet',
          'filter',
          'input',
          'udp',
          'dport',
          RANGE.replace(':', '-'),
          'accept',
          'comment',
          `"${WIDE_NFT_COMMENT}"`,
        ]);
        return;
      }
      const listing = await inLab(lab, ['nft', '-a', 'list', 'chain', 'inet', 'filter', 'input']);
      const handle = new RegExp(`comment "${WIDE_NFT_COMMENT}" # handle (\\d+)`).exec(listing)?.[1];
      if (handle === undefined) throw new LabError(`the wide-open rule is gone:\n${listing}`);
      await inLab(lab, ['nft', 'delete', 'rule', 'inet', 'filter', 'input', 'handle', handle]);
    },
    preload: 'api',
  },
  iptablesProfile('nft'),
  iptablesProfile('legacy'),
  {
    name: 'ufw-ipset',
    setBased: true,
    config: ['backend = "ufw"', 'ufw_fast_path = "ipset"'],
    // The hook as `moshwall install` adds it: our sets and their match rules in UFW's after chains.
    setUp: installLabFastPath,
    wideOpen: ufwWideOpen,
    preload: 'api',
    listing: labFastBackend,
  },
  {
    // What a plain install gives UFW users where ipset works (ufw_fast_path absent = "auto"): the sets,
    // matched by rules moshwall places into UFW's chain at run time; no UFW file edited.
    name: 'ufw-runtime',
    setBased: true,
    config: ['backend = "ufw"'],
    async setUp() {},
    wideOpen: ufwWideOpen,
    preload: 'api',
    listing: (lab) => labUfwBackend(lab, 'runtime'),
  },
  {
    name: 'firewalld',
    setBased: false,
    config: ['backend = "firewalld"'],
    labOptions: { firewall: 'firewalld' },
    // The lab's firewalld: default zone public (ssh allowed, everything else rejected).
    async setUp() {},
    async wideOpen(lab, open) {
      const ports = `${RANGE.replace(':', '-')}/udp`;
      await inLab(lab, ['firewall-cmd', '--zone=public', `--${open ? 'add' : 'remove'}-port=${ports}`]);
    },
    preload: 'api',
    // One firewall-cmd of N rich rules takes longer per rule the more it holds (300: 3 s, 1000: ~25 s,
    // beyond the default 15 s command_timeout_ms); the daemon's converge lives with that as users get it.
    preloadBatch: 200,
    note: 'the backend sends at most 100 rich rules per firewall-cmd call, one after another: one call costs more than its size (10 rules 0.38 s, 100 rules 0.9 s, 300 rules 3.0 s, 1000 rules about 25 s, past the default command_timeout_ms of 15 s), so 1000 new sessions are 10 calls. Its changes are timed with 1000 rules preloaded in calls of 200',
  },
];

export interface Options {
  backends: Profile[];
  sessions: number;
  runs: number;
  counts: number[];
  idleS: number;
  connectRuns: number;
  /** Each session with a shell beside it (a process of its user holding no socket), as a real one has. */
  shells: boolean;
}

/** The value after --name, or undefined. */
export function flag(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? process.argv[index + 1] : undefined;
}

/** A whole number ≥ min from --name, else the default. */
export function count(name: string, fallback: number, min = 1): number {
  const text = flag(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min)
    throw new LabError(`--${name} must be a whole number ≥ ${min}, got "${text}"`);
  return value;
}

/** The options from the command line. */
export function parseOptions(): Options {
  const names = (flag('backends') ?? PROFILES.map((profile) => profile.name).join(',')).split(',');
  const backends = names.map((name) => {
    const profile = PROFILES.find((each) => each.name === name);
    if (!profile)
      throw new LabError(
        `--backends: no profile "${name}" (${PROFILES.map((each) => each.name).join(', ')})`,
      );
    return profile;
  });
  const counts = (flag('counts') ?? '0,100,1000').split(',').map(Number);
  if (
    !counts.every((each) => Number.isInteger(each) && each >= 0) ||
    counts.some((each, i) => i > 0 && each <= (counts[i - 1] ?? 0))
  )
    throw new LabError(`--counts must be ascending whole numbers, got "${flag('counts')}"`);
  const sessions = count('sessions', 1000);
  if (sessions > 1000 || sessions % USERS.length !== 0)
    throw new LabError(
      `--sessions must be a multiple of ${USERS.length} up to 1000 (the range holds 1001 ports)`,
    );
  return {
    backends,
    sessions,
    runs: count('runs', 50),
    counts,
    idleS: count('idle-s', 30),
    connectRuns: count('connect-runs', 5, 0),
    shells: process.argv.includes('--shells'),
  };
}

/**
 * The profile's backend as moshwall builds it from the profile's config, over a Runner into the lab, to
 * list our rules from outside; a profile whose backend reads files (UFW) gives its own.
 */
export function listingBackend(lab: Lab, profile: Profile): Backend {
  if (profile.listing !== undefined) return profile.listing(lab);
  const config = parseConfig(configText(profile), `${profile.name} profile`);
  return createBackend({ ...config, commandTimeoutMs: 30_000 }, labRunner(lab));
}

/** The config text the daemon and the worker get. */
export function configText(profile: Profile): string {
  return [...profile.config, `port_range = "${RANGE}"`, 'max_sessions_per_user = 0', ''].join('\n');
}
