/* Where the firewalld backend puts its rules: the zone, and why (doctor prints it). */

import { FirewallError } from '../../errors.ts';
import type { RunTool } from '../kernel/tool.ts';
import { FIREWALLD_NAME } from './commands.ts';
import { defaultRouteInterface } from './output.ts';

/** Where our rules go and why, for doctor. */
export interface ZoneChoice {
  zone: string;
  why: string;
}

/**
 * The zone our rules go in: the configured one (which must exist), else the zone of the default route's
 * interface, else firewalld's default zone; `read` runs a firewall-cmd that must succeed.
 */
export async function findZone(
  run: RunTool,
  read: (argv: string[]) => Promise<string>,
  configured: string | undefined,
): Promise<ZoneChoice> {
  if (configured !== undefined) {
    const zones = (await read(['firewall-cmd', '--get-zones'])).trim().split(/\s+/);
    if (!zones.includes(configured)) {
      throw new FirewallError(
        `firewalld has no zone "${configured}" (firewalld_zone); its zones: ${zones.join(', ')}`,
        { zone: configured },
      );
    }
    return { zone: configured, why: 'configured (firewalld_zone)' };
  }
  let device: string | undefined;
  for (const family of ['-4', '-6']) {
    const route = await run(['ip', family, '-o', 'route', 'show', 'default']);
    device = route.exitCode === 0 ? defaultRouteInterface(route.stdout) : undefined;
    if (device !== undefined) break;
  }
  if (device !== undefined && FIREWALLD_NAME.test(device)) {
    const bound = await run(['firewall-cmd', `--get-zone-of-interface=${device}`]);
    const zone = bound.stdout.trim();
    if (bound.exitCode === 0 && FIREWALLD_NAME.test(zone)) {
      return { zone, why: `the zone of ${device}, the interface of the default route` };
    }
  }
  const zone = (await read(['firewall-cmd', '--get-default-zone'])).trim();
  if (!FIREWALLD_NAME.test(zone)) {
    throw new FirewallError(`firewalld named an odd default zone "${zone}"`, { zone });
  }
  const because =
    device === undefined
      ? 'there is no default route'
      : `${device}, the interface of the default route, is bound to no zone`;
  return { zone, why: `firewalld's default zone (${because})` };
}
