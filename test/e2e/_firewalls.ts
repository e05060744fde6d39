// Admin firewalls for labs without UFW, for the *-mosh e2e tests and the benches: each is an admin's own
// default-deny ruleset as the distribution keeps it (its file in the server host's /etc, loaded with the
// distribution's own command), plus what a test needs to watch it from outside moshwall: the admin's part
// of the ruleset as text (to prove it byte-identical), moshwall's ports in force, and the admin's reload.
//   const firewall = adminFirewall('nftables-debian');
//   const lab = await createLab({ adminFirewall: firewall.setup });
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { LabError } from './_exec.ts';
import type { AdminHost, Lab, LabOptions } from './lab.ts';
import { createLab } from './lab.ts';

export type AdminFirewallKind = 'nftables-debian' | 'nftables-rhel' | 'iptables-nft' | 'iptables-legacy';

export interface AdminFirewall {
  kind: AdminFirewallKind;
  /** The backend that manages it when named explicitly, and what `auto` must pick. */
  backend: 'nftables' | 'iptables';
  /** The config lines that name that backend (with its variant for iptables). */
  config: string;
  /** For LabOptions.adminFirewall: writes the admin's files in the server host's /etc and loads them. */
  setup(host: AdminHost): Promise<void>;
  /** The admin's reload from their files, as their distribution's service does (wipes moshwall's rules). */
  reload(lab: Lab): Promise<void>;
  /** Everything in the firewall that is not moshwall's, as text: equal texts mean the admin's rules are untouched. */
  adminSnapshot(lab: Lab): Promise<string>;
  /** moshwall's ports open to anyone, sorted ("60001/v4"); with its jump gone each ends in " (no jump)". */
  ours(lab: Lab): Promise<string[]>;
  /** Why it cannot be tested here (a tool missing), or false. */
  skipReason(): string | false;
}

/**
 * Debian's /etc/nftables.conf as an admin makes it default-deny: policy drop, ssh, replies, ND. The one
 * definition of this baseline: the e2e tests and bench/scale load it.
 */
export const DEBIAN_NFTABLES_CONF = `#!/usr/sbin/nft -f

flush ruleset

table inet filter {
	chain input {
		type filter hook input priority filter; policy drop;
		ct state established,related accept
		iif "lo" accept
		tcp dport 22 accept
		icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept
	}
	chain forward {
		type filter hook forward priority filter;
	}
	chain output {
		type filter hook output priority filter;
	}
}
`;

/** RHEL's nftables service: /etc/sysconfig/nftables.conf includes the sample /etc/nftables/main.nft. */
const RHEL_SYSCONFIG =
  '# Uncomment the include statement here to load the default config sample\ninclude "/etc/nftables/main.nft"\n';
const RHEL_MAIN_NFT = `# Sample configuration for nftables service (as RHEL 9 ships it).
flush ruleset

table inet nftables_svc {
	set allowed_protocols {
		type inet_proto
		elements = { icmp, icmpv6 }
	}
	set allowed_interfaces {
		type ifname
		elements = { "lo" }
	}
	set allowed_tcp_dports {
		type inet_service
		elements = { ssh, 9090 }
	}
	chain allow {
		ct state established,related accept
		meta l4proto @allowed_protocols accept
		iifname @allowed_interfaces accept
		tcp dport @allowed_tcp_dports accept
	}
	chain INPUT {
		type filter hook input priority filter + 20
		policy accept
		jump allow
		reject with icmpx type port-unreachable
	}
}
`;

/**
 * Debian's iptables-persistent files: INPUT policy DROP, replies, loopback, ssh (and ICMPv6 for v6). The
 * one definition of this baseline: the e2e tests (iptables-contract too) and bench/scale load it.
 */
export const IPTABLES_RULES = {
  v4: `*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
`,
  v6: `*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -i lo -j ACCEPT
-A INPUT -p ipv6-icmp -j ACCEPT
-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
`,
};
const IPTABLES_FILES = { v4: '/etc/iptables/rules.v4', v6: '/etc/iptables/rules.v6' };
/** The update-alternatives links that make `iptables` and friends one variant or the other. */
const IPTABLES_ALTERNATIVES = [
  'iptables',
  'iptables-save',
  'iptables-restore',
  'ip6tables',
  'ip6tables-save',
  'ip6tables-restore',
];

/** Writes `text` to `path` in the server host (its /etc overlay), making directories as needed. */
function writeServerFile(host: { path(path: string): string }, path: string, text: string): void {
  const file = host.path(path);
  mkdirSync(dirname(file), { recursive: true, mode: 0o755 });
  writeFileSync(file, text, { mode: 0o644 });
}

/** Runs argv as root in the server host and returns its stdout; throws with its stderr if it fails. */
async function serverOut(lab: Lab, argv: string[], input?: string): Promise<string> {
  const result = await lab.runServer(argv, input === undefined ? {} : { input });
  if (result.exitCode !== 0)
    throw new LabError(`${argv.join(' ')} exited ${result.exitCode}: ${result.stderr}`);
  return result.stdout;
}

/** True when argv runs here (for skip reasons). */
function runs(argv: string[]): boolean {
  const [file = '', ...args] = argv;
  return spawnSync(file, args).status === 0;
}

type NftObject = Record<string, Record<string, unknown>>;

/** True when an `nft -j list ruleset` object is moshwall's: its chain, its sets, a rule in its chain, its jump. */
function isOurNftObject(object: NftObject): boolean {
  const set = object.set;
  const chain = object.chain;
  const rule = object.rule;
  if (set !== undefined) return typeof set.name === 'string' && set.name.startsWith('moshwall_');
  if (chain !== undefined) return chain.name === 'moshwall_input';
  if (rule === undefined) return false;
  return (
    rule.chain === 'moshwall_input' ||
    (rule.comment === 'moshwall' && JSON.stringify(rule.expr).includes('"jump"'))
  );
}

/** The objects of `nft -j list ruleset` in the server host. */
async function nftObjects(lab: Lab): Promise<NftObject[]> {
  const parsed = JSON.parse(await serverOut(lab, ['nft', '-j', 'list', 'ruleset'])) as {
    nftables: NftObject[];
  };
  return parsed.nftables;
}

/** An nftables admin firewall loaded from `file` (which holds or includes `flush ruleset`). */
function nftablesFirewall(
  kind: AdminFirewallKind,
  files: Record<string, string>,
  file: string,
): AdminFirewall {
  return {
    kind,
    backend: 'nftables',
    config: 'backend = "nftables"\n',
    async setup(host) {
      for (const [path, text] of Object.entries(files)) writeServerFile(host, path, text);
      await host.run(['nft', '-f', file]);
    },
    async reload(lab) {
      await serverOut(lab, ['nft', '-f', file]);
    },
    async adminSnapshot(lab) {
      return (await nftObjects(lab))
        .filter((object) => !isOurNftObject(object))
        .map((object) => JSON.stringify(object))
        .join('\n');
    },
    async ours(lab) {
      const objects = await nftObjects(lab);
      const jump = objects.some(
        (object) =>
          object.rule !== undefined && isOurNftObject(object) && object.rule.chain !== 'moshwall_input',
      );
      const ports: string[] = [];
      for (const { set } of objects) {
        const match = typeof set?.name === 'string' ? /^moshwall_(v4|v6)_any$/.exec(set.name) : null;
        if (!match || !Array.isArray(set?.elem)) continue;
        for (const port of set.elem) ports.push(`${String(port)}/${match[1]}${jump ? '' : ' (no jump)'}`);
      }
      return ports.sort();
    },
    skipReason: () => (runs(['nft', '--version']) ? false : 'nft is not installed'),
  };
}

/** An iptables admin firewall of one variant, restored from Debian's iptables-persistent files. */
function iptablesFirewall(variant: 'nft' | 'legacy'): AdminFirewall {
  const tool = (family: 'v4' | 'v6', suffix: string) =>
    `${family === 'v6' ? 'ip6tables' : 'iptables'}-${variant}${suffix}`;
  const restore = async (run: (argv: string[], input?: string) => Promise<unknown>) => {
    for (const family of ['v4', 'v6'] as const)
      await run([tool(family, '-restore'), '-w'], IPTABLES_RULES[family]);
  };
  const saved = async (lab: Lab) =>
    Promise.all(
      (['v4', 'v6'] as const).map(async (family) => ({
        family,
        text: await serverOut(lab, [tool(family, '-save'), '-t', 'filter']),
      })),
    );
  return {
    kind: `iptables-${variant}`,
    backend: 'iptables',
    config: `backend = "iptables"\niptables_variant = "${variant}"\n`,
    async setup(host) {
      for (const family of ['v4', 'v6'] as const)
        writeServerFile(host, IPTABLES_FILES[family], IPTABLES_RULES[family]);
      // The host's `iptables` is this variant (Debian's update-alternatives, in the lab's /etc only).
      for (const name of IPTABLES_ALTERNATIVES) {
        const target = `/usr/sbin/${name.replace(/^(ip6?tables)/, `$1-${variant}`)}`;
        await host.run(['ln', '-sfn', target, `/etc/alternatives/${name}`]);
      }
      await restore((argv, input) => host.run(argv, input));
    },
    async reload(lab) {
      await restore((argv, input) => serverOut(lab, argv, input));
    },
    async adminSnapshot(lab) {
      return (await saved(lab))
        .map(({ family, text }) =>
          [
            family,
            ...text
              .split('\n')
              .filter((line) => !line.startsWith('#') && !line.includes('moshwall'))
              .map((line) => line.replace(/ \[\d+:\d+\]$/, '')),
          ].join('\n'),
        )
        .join('\n');
    },
    async ours(lab) {
      const ports: string[] = [];
      for (const { family, text } of await saved(lab)) {
        const lines = text.split('\n');
        const jump = lines.includes('-A INPUT -m comment --comment moshwall -j moshwall-input');
        for (const line of lines) {
          const match =
            /^-A moshwall-input -p udp -m udp --dport (\d+) -m comment --comment moshwall -j ACCEPT$/.exec(
              line,
            );
          if (match) ports.push(`${match[1]}/${family}${jump ? '' : ' (no jump)'}`);
        }
      }
      return ports.sort();
    },
    skipReason: () =>
      runs([tool('v4', ''), '--version']) && runs([tool('v6', ''), '--version'])
        ? false
        : `iptables-${variant} is not installed`,
  };
}

/** The admin firewall of this kind. */
export function adminFirewall(kind: AdminFirewallKind): AdminFirewall {
  switch (kind) {
    case 'nftables-debian':
      return nftablesFirewall(kind, { '/etc/nftables.conf': DEBIAN_NFTABLES_CONF }, '/etc/nftables.conf');
    case 'nftables-rhel':
      return nftablesFirewall(
        kind,
        { '/etc/sysconfig/nftables.conf': RHEL_SYSCONFIG, '/etc/nftables/main.nft': RHEL_MAIN_NFT },
        '/etc/sysconfig/nftables.conf',
      );
    case 'iptables-nft':
      return iptablesFirewall('nft');
    case 'iptables-legacy':
      return iptablesFirewall('legacy');
  }
}

/** A lab whose server host has no active UFW but this admin firewall (other options as createLab's). */
export function createFirewallLab(
  firewall: AdminFirewall,
  options: Omit<LabOptions, 'adminFirewall'> = {},
): Promise<Lab> {
  return createLab({ ...options, adminFirewall: (host) => firewall.setup(host) });
}
