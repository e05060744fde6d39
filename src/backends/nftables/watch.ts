import { RULE_TAG } from '../../rules.ts';
import type { MonitorEvent } from '../monitor.ts';
import { OUR_CHAIN } from './layout.ts';

/**
 * True when a `nft monitor rules` line reports a rule moshwall's own scripts add (see script.ts): a rule
 * in our chain, or our jump. moshwall never deletes an nftables rule (a revoke deletes set elements), so
 * every deleted rule, ours included (an admin's `flush ruleset` or `flush chain`), is someone else's change.
 */
export function isOurNftEvent(event: MonitorEvent): boolean {
  const { verb, object, name, rest } = event;
  if (object !== 'rule' || (verb !== 'add' && verb !== 'insert')) return false;
  return name === OUR_CHAIN || rest === `jump ${OUR_CHAIN} comment "${RULE_TAG}"`;
}
