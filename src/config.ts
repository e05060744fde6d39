import { readFileSync } from 'node:fs';
import { parse as parseToml, TomlError } from 'smol-toml';
import { ConfigError } from './errors.ts';
import { type ListenAddress, parseListen } from './metrics/listen.ts';
import type { PortRange } from './model.ts';
import { parseNetwork } from './net.ts';

export type BackendName = 'ufw' | 'nftables' | 'iptables' | 'firewalld' | 'auto';

export const DEFAULT_CONFIG_PATH = '/etc/moshwall/moshwall.toml';

/** Everything moshwall can be told; see README "Configuration" and docs/moshwall.example.toml. */
export interface Config {
  /** Where the values came from ("(defaults)" when no file). */
  source: string;
  backend: BackendName;
  /** nftables: the admin's table (found automatically when absent) and its input chain. */
  nftablesTable?: { family: 'inet' | 'ip' | 'ip6'; name: string };
  nftablesChain?: string;
  /**
   * UFW: how ports are opened. Absent ("auto"): members of moshwall's ipsets matched by rules placed into
   * UFW's chain at run time where ipset works, else classic rules; "runtime": that, always; "ipset": the
   * sets matched by a hook in after.rules; "off": classic `ufw allow` rules.
   */
  ufwFastPath?: 'ipset' | 'runtime' | 'off';
  /** iptables: force iptables-nft or iptables-legacy; absent means the system's iptables. */
  iptablesVariant?: 'nft' | 'legacy';
  /** firewalld: the zone our rules go in; absent means the zone of the default route's interface. */
  firewalldZone?: string;
  portRange: PortRange;
  /** Users who may get a port; empty with allowGroups empty means everyone. */
  allowUsers: string[];
  /** Groups whose members may get a port. */
  allowGroups: string[];
  /** Most ports one user may hold open at once; 0 means no cap. */
  maxSessionsPerUser: number;
  /** Canonical CIDRs a client may come from; empty means anywhere. */
  sourceNetworks: string[];
  /** Executable base names that count as mosh-server. */
  moshServerNames: string[];
  /** The real mosh-server binary (checked by doctor, run by the shim). */
  moshServer: string;
  /** Accept mosh-servers in another user or mount namespace than the host's (default false). */
  allowForeignNamespaces: boolean;
  lockFile: string;
  commandTimeoutMs: number;
  lockTimeoutMs: number;
  /** Daemon: how often /proc/net/udp{,6} is checked for changed sockets. */
  pollIntervalMs: number;
  /**
   * Daemon: the firewall checked against the sessions at least this often, changed or not (every
   * process walked again at least every 10th time while the holder watch runs).
   */
  resyncIntervalMs: number;
  /**
   * Daemon: between reconciles, each open session's holder is checked (tracer, uid) and the owners'
   * other processes are looked through for its socket this often (the holder watch).
   */
  watchIntervalMs: number;
  /** Daemon: the Unix socket the shim asks through. */
  socketPath: string;
  /** Daemon: on SIGTERM keep live sessions' rules ("keep") or remove every rule of ours ("flush"). */
  onStop: 'keep' | 'flush';
  /** Shim: longest wait for the daemon's answer before MOSH CONNECT is passed on anyway. */
  shimTimeoutMs: number;
  /** Hook: how long `moshwall hook` keeps watching for the session being started. */
  hookWatchMs: number;
  /** Daemon: where GET /metrics is served (off when absent); loopback unless metricsAllowPublic. */
  metricsListen?: ListenAddress;
  /** Allow metrics_listen on a non-loopback address (default false). */
  metricsAllowPublic: boolean;
  /** Label the sessions gauge by user (default false: cardinality and privacy). */
  metricsUserLabel: boolean;
}

export const DEFAULT_CONFIG: Config = {
  source: '(defaults)',
  backend: 'ufw',
  portRange: { first: 60000, last: 61000 },
  allowUsers: [],
  allowGroups: [],
  maxSessionsPerUser: 10,
  sourceNetworks: [],
  moshServerNames: ['mosh-server'],
  moshServer: '/usr/bin/mosh-server',
  allowForeignNamespaces: false,
  lockFile: '/run/moshwall/lock.d/lock',
  commandTimeoutMs: 15000,
  lockTimeoutMs: 60000,
  pollIntervalMs: 250,
  resyncIntervalMs: 30000,
  watchIntervalMs: 1500,
  socketPath: '/run/moshwall/moshwall.sock',
  onStop: 'keep',
  shimTimeoutMs: 3000,
  hookWatchMs: 20000,
  metricsAllowPublic: false,
  metricsUserLabel: false,
};

type Check = (value: unknown, fail: (message: string) => never) => Partial<Config>;

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$/;

/** A TOML string array of user/group names, each a valid POSIX-ish name. */
function nameList(key: 'allowUsers' | 'allowGroups'): Check {
  return (value, fail) => {
    const names = stringList(value, fail);
    for (const name of names) if (!NAME.test(name)) fail(`"${name}" is not a valid name`);
    return { [key]: names };
  };
}

/** The value as an array of strings, or a failure naming what it was. */
function stringList(value: unknown, fail: (message: string) => never): string[] {
  if (!Array.isArray(value)) fail(`expected an array of strings, got ${describe(value)}`);
  return value.map((item) =>
    typeof item === 'string' ? item : fail(`expected strings, got ${describe(item)}`),
  );
}

/** An integer within [min, max], or a failure naming the value. */
function integer(value: unknown, min: number, max: number, fail: (message: string) => never): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(`expected a whole number from ${min} to ${max}, got ${describe(value)}`);
  }
  return value;
}

/** "first:last" → an inclusive port range within 1..65535. */
export function parsePortRange(text: string): PortRange | string {
  const match = /^(\d{1,5}):(\d{1,5})$/.exec(text);
  if (!match) return `expected "first:last" such as "60000:61000", got "${text}"`;
  const first = Number(match[1]);
  const last = Number(match[2]);
  if (first < 1 || last > 65535 || first > last)
    return `"${text}" is not a range within 1:65535 with first <= last`;
  return { first, last };
}

const CHECKS: Record<string, Check> = {
  backend: (value, fail) => {
    if (
      value !== 'ufw' &&
      value !== 'nftables' &&
      value !== 'iptables' &&
      value !== 'firewalld' &&
      value !== 'auto'
    ) {
      return fail(`expected "ufw", "nftables", "iptables", "firewalld" or "auto", got ${describe(value)}`);
    }
    return { backend: value };
  },
  nftables_table: (value, fail) => {
    const match =
      typeof value === 'string' ? /^(inet|ip|ip6) ([A-Za-z_][A-Za-z0-9_.-]{0,63})$/.exec(value) : null;
    if (!match)
      return fail(`expected "<inet|ip|ip6> <table name>" such as "inet filter", got ${describe(value)}`);
    return { nftablesTable: { family: match[1] as 'inet' | 'ip' | 'ip6', name: match[2] ?? '' } };
  },
  nftables_chain: (value, fail) => {
    if (typeof value !== 'string' || !/^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/.test(value)) {
      return fail(`expected a chain name such as "input", got ${describe(value)}`);
    }
    return { nftablesChain: value };
  },
  ufw_fast_path: (value, fail) => {
    if (value !== 'auto' && value !== 'runtime' && value !== 'ipset' && value !== 'off')
      return fail(`expected "auto", "runtime", "ipset" or "off", got ${describe(value)}`);
    return value === 'auto' ? {} : { ufwFastPath: value };
  },
  iptables_variant: (value, fail) => {
    if (value !== 'nft' && value !== 'legacy')
      return fail(`expected "nft" or "legacy", got ${describe(value)}`);
    return { iptablesVariant: value };
  },
  firewalld_zone: (value, fail) => {
    if (typeof value !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9_+.-]{0,31}$/.test(value)) {
      return fail(`expected a firewalld zone name such as "public", got ${describe(value)}`);
    }
    return { firewalldZone: value };
  },
  port_range: (value, fail) => {
    if (typeof value !== 'string')
      return fail(`expected a string such as "60000:61000", got ${describe(value)}`);
    const range = parsePortRange(value);
    return typeof range === 'string' ? fail(range) : { portRange: range };
  },
  allow_users: nameList('allowUsers'),
  allow_groups: nameList('allowGroups'),
  max_sessions_per_user: (value, fail) => ({ maxSessionsPerUser: integer(value, 0, 65535, fail) }),
  source_networks: (value, fail) => ({
    sourceNetworks: stringList(value, fail).map((text) => {
      const cidr = parseNetwork(text);
      return typeof cidr === 'string' ? fail(cidr) : cidr.network;
    }),
  }),
  mosh_server_names: (value, fail) => {
    const names = stringList(value, fail);
    if (names.length === 0) fail('expected at least one name');
    for (const name of names)
      if (name.includes('/') || name === '') fail(`"${name}" must be a bare file name`);
    return { moshServerNames: names };
  },
  mosh_server: (value, fail) => ({ moshServer: absolutePath(value, fail) }),
  allow_foreign_namespaces: (value, fail) => {
    if (typeof value !== 'boolean') return fail(`expected true or false, got ${describe(value)}`);
    return { allowForeignNamespaces: value };
  },
  lock_file: (value, fail) => ({ lockFile: absolutePath(value, fail) }),
  command_timeout_ms: (value, fail) => ({ commandTimeoutMs: integer(value, 100, 600000, fail) }),
  lock_timeout_ms: (value, fail) => ({ lockTimeoutMs: integer(value, 0, 3600000, fail) }),
  poll_interval_ms: (value, fail) => ({ pollIntervalMs: integer(value, 20, 60000, fail) }),
  resync_interval_ms: (value, fail) => ({ resyncIntervalMs: integer(value, 1000, 86400000, fail) }),
  watch_interval_ms: (value, fail) => ({ watchIntervalMs: integer(value, 250, 60000, fail) }),
  socket_path: (value, fail) => ({ socketPath: absolutePath(value, fail) }),
  on_stop: (value, fail) => {
    if (value !== 'keep' && value !== 'flush')
      return fail(`expected "keep" or "flush", got ${describe(value)}`);
    return { onStop: value };
  },
  shim_timeout_ms: (value, fail) => ({ shimTimeoutMs: integer(value, 100, 30000, fail) }),
  hook_watch_ms: (value, fail) => ({ hookWatchMs: integer(value, 1000, 600000, fail) }),
  // Checked once every key is read (metrics_allow_public may come after it): see checkMetricsListen.
  metrics_listen: (value, fail) => {
    if (typeof value !== 'string')
      return fail(`expected a string such as "127.0.0.1:9654", got ${describe(value)}`);
    const parsed = parseListen(value, true);
    return typeof parsed === 'string' ? fail(parsed) : { metricsListen: parsed };
  },
  metrics_allow_public: (value, fail) => {
    if (typeof value !== 'boolean') return fail(`expected true or false, got ${describe(value)}`);
    return { metricsAllowPublic: value };
  },
  metrics_user_label: (value, fail) => {
    if (typeof value !== 'boolean') return fail(`expected true or false, got ${describe(value)}`);
    return { metricsUserLabel: value };
  },
};

/** An absolute path without NUL or "..", or a failure. */
function absolutePath(value: unknown, fail: (message: string) => never): string {
  if (
    typeof value === 'string' &&
    value.startsWith('/') &&
    !value.includes('\0') &&
    !value.split('/').includes('..')
  ) {
    return value;
  }
  return fail(`expected an absolute path, got ${describe(value)}`);
}

/** A short description of a TOML value for error messages. */
function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (value instanceof Date) return 'a date';
  if (typeof value === 'object' && value !== null) return 'a table';
  return `${JSON.stringify(value)} (${typeof value})`;
}

/** The 1-based line where `key = ` or a `[key]` table is written, if it can be found. */
function lineOfKey(text: string, key: string): number | undefined {
  const escaped = key.replace(/[^\w-]/g, '\\$&');
  const pattern = new RegExp(`^\\s*(?:["']?${escaped}["']?\\s*=|\\[\\[?\\s*["']?${escaped}["']?\\s*[\\].])`);
  const index = text.split('\n').findIndex((line) => pattern.test(line));
  return index < 0 ? undefined : index + 1;
}

/** Config from TOML text; every problem is a ConfigError naming file, line and key. */
export function parseConfig(text: string, file: string): Config {
  let document: Record<string, unknown>;
  try {
    document = parseToml(text);
  } catch (error) {
    const line = error instanceof TomlError ? error.line : undefined;
    const reason = error instanceof Error ? (error.message.split('\n')[0] ?? '') : String(error);
    throw new ConfigError(
      `${file}${line ? `:${line}` : ''}: ${reason}`,
      line ? { file, line } : { file },
      error,
    );
  }
  let config: Config = { ...DEFAULT_CONFIG, source: file };
  for (const [key, value] of Object.entries(document)) {
    const line = lineOfKey(text, key);
    const where = `${file}${line ? `:${line}` : ''}`;
    const fail = (message: string): never => {
      throw new ConfigError(`${where}: ${key}: ${message}`, line ? { file, line, key } : { file, key });
    };
    const check = CHECKS[key];
    if (!check) fail(`unknown key (known: ${Object.keys(CHECKS).join(', ')})`);
    else config = { ...config, ...check(value, fail) };
  }
  const listen = config.metricsListen;
  if (listen !== undefined && !config.metricsAllowPublic) {
    const address = listen.host.includes(':')
      ? `[${listen.host}]:${listen.port}`
      : `${listen.host}:${listen.port}`;
    const problem = parseListen(address, false);
    if (typeof problem === 'string') {
      const line = lineOfKey(text, 'metrics_listen');
      throw new ConfigError(
        `${file}${line ? `:${line}` : ''}: metrics_listen: ${problem}`,
        line ? { file, line, key: 'metrics_listen' } : { file, key: 'metrics_listen' },
      );
    }
  }
  return config;
}

/**
 * The config in force: `path` if given (must exist), else MOSHWALL_CONFIG, else the default path
 * if it exists, else the defaults.
 */
export function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv): Config {
  const explicit = path ?? env.MOSHWALL_CONFIG;
  const file = explicit ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && explicit === undefined) return DEFAULT_CONFIG;
    throw new ConfigError(`Cannot read config file ${file}: ${code ?? String(error)}`, { file }, error);
  }
  return parseConfig(text, file);
}
