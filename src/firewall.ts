/** The interface the core talks to a firewall through; every backend under src/backends/ implements it. */
import type { FirewallRule, RuleSpec } from './rules.ts';

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
   * Removes the structures of ours that hold no rule any more (our chain, the jump into it, our sets),
   * so that after a flush the admin's ruleset is exactly what it was before moshwall ran. Leaves all of
   * it alone while anything of ours (or anything it did not make) is still inside. Optional: backends
   * whose rules are the whole footprint (ufw, firewalld) need none.
   */
  removeFootprint?(): Promise<AppliedChange[]>;
  /**
   * Puts the backend's own structures back before a reconcile plans (UFW runtime fast path: the match
   * rules a UFW reload dropped), so a session opened later needs only its own change. Called right after
   * listRules, under the lock, never on a dry run. Optional.
   */
  prepare?(): Promise<AppliedChange[]>;
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
