import type { Family, PortRange } from '../model.ts';

/** The comment every rule of ours carries; a rule without it is never touched. */
export const RULE_TAG = 'moshwall';

/** One rule moshwall wants to exist: UDP to `port` from `source` (a CIDR), to any local address. */
export interface RuleSpec {
  port: number;
  family: Family;
  /** CIDR; "0.0.0.0/0" or "::/0" means from anywhere. */
  source: string;
}

/** A rule as the firewall lists it, ours or not, reduced to what coverage decisions need. */
export interface FirewallRule {
  family: Family;
  action: 'allow' | 'deny' | 'reject' | 'limit' | 'other';
  direction: 'in' | 'out' | 'other';
  protocol: 'udp' | 'tcp' | 'any' | 'other';
  /** Destination ports; "any" when the rule does not restrict them. */
  ports: PortRange[] | 'any';
  /** CIDR of allowed sources ("0.0.0.0/0" / "::/0" for anywhere). */
  source: string;
  /** Restricted source port, or undefined for any. */
  sourcePorts?: string;
  /** CIDR of the destination ("0.0.0.0/0" / "::/0" for any). */
  destination: string;
  /** Interface the rule is bound to, if any. */
  interface?: string;
  /** Application profile names, if the rule uses them. */
  application?: string;
  comment: string;
  /** True only when the rule carries our tag and has exactly the shape we create. */
  ours: boolean;
  /**
   * True when the firewall evaluates this rule only after moshwall's accept (nftables, iptables: our jump
   * is, or will be inserted, above it), so it cannot block a port moshwall opens.
   */
  afterOurs?: boolean;
  /** The firewall's own text for this rule, for messages. */
  raw: string;
}

/** What a backend can say about its firewall before anything is changed. */
export interface BackendProbe {
  /** The tool exists and answered. */
  installed: boolean;
  /** The firewall is enforcing (UFW: "Status: active"). */
  active: boolean;
  /** IPv6 rules are managed by this firewall. */
  ipv6: boolean;
  /** Human-readable facts: version, config paths, why not installed/active. */
  detail: string[];
  /** Ways the firewall does not do what the config asks, each with its fix (doctor fails on them). */
  problems?: string[];
}

/** What one change did: the specs it covered and the tool's words. */
export interface AppliedChange {
  kind: 'allow' | 'revoke';
  specs: RuleSpec[];
  /** The argv run, for logs and --verbose. */
  argv: string[];
  output: string;
}

/** One firewall behind one interface (see test/backends/contract.ts). */
export interface Backend {
  readonly name: string;
  /** Is the tool present, is the firewall active, is IPv6 on. Never throws for "missing". */
  probe(): Promise<BackendProbe>;
  /** Every rule the firewall has that could matter for inbound UDP, ours flagged. */
  listRules(): Promise<FirewallRule[]>;
  /** Adds rules of ours; each spec becomes a tagged rule. Idempotent. */
  allow(specs: RuleSpec[]): Promise<AppliedChange[]>;
  /** Removes rules of ours with exactly these specs and our tag, nothing else. Idempotent. */
  revoke(specs: RuleSpec[]): Promise<AppliedChange[]>;
  /**
   * A cheap token that changes whenever the firewall's rules may have changed (e.g. the mtime of
   * ufw's rule files), so the daemon can notice an admin's change or reload without listing rules.
   * Optional: without it the daemon relies on its periodic resync.
   */
  changeToken?(): string;

  /**
   * Starts watching the firewall for changes made by anyone (a reload, an admin's edit), calling
   * onChange with a short reason each time; the daemon reconciles then. Optional: backends whose
   * changeToken is cheap and complete need none. Called only after a successful probe.
   */
  watchChanges?(onChange: (what: string) => void): { close(): void };
}
