import type { MonitorEvent } from '../monitor.ts';
import { OUR_CHAIN } from './rules.ts';

/**
 * True when a `nft monitor rules` line about iptables-nft's filter tables reports a rule change of the kind
 * moshwall's own restore inputs make (see restore.ts): adding or deleting a rule in our chain, inserting
 * our jump (nft prints it as "… counter packets 0 bytes 0 jump moshwall-input", without the comment).
 * Anything else, including a rule deleted from INPUT (where moshwall never deletes), is someone else's
 * change. (An admin's restore also deletes INPUT's rules, so it is seen even though it empties our chain.)
 */
export function isOurIptablesNftEvent(event: MonitorEvent): boolean {
  const { verb, object, family, table, name, rest } = event;
  if ((family !== 'ip' && family !== 'ip6') || table !== 'filter') return false;
  if (object !== 'rule') return false;
  if (name === OUR_CHAIN) return true;
  return (
    (verb === 'add' || verb === 'insert') && rest.split(/\s+/).slice(-2).join(' ') === `jump ${OUR_CHAIN}`
  );
}
