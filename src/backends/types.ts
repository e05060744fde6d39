/** The Backend interface and rule types, for daemon/daemon.ts until its import moves to ../firewall.ts. */
export type { AppliedChange, Backend, BackendProbe } from '../firewall.ts';
export { type FirewallRule, RULE_TAG, type RuleSpec } from '../rules.ts';
