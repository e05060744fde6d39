/* firewalld services, for coverage: which ports a service the zone allows opens (firewall-cmd --info-service). */
import type { RunTool } from '../kernel/tool.ts';
import { FIREWALLD_NAME } from './commands.ts';
import { parseServiceInfo } from './output.ts';
import type { ServicePorts } from './rich.ts';

/** firewalld's services as the zone listing names them, read once each with --info-service. */
export interface ServiceCache {
  /** A service's ports with those of the services it includes (undefined: unknown or unreadable). */
  load(name: string): Promise<ServicePorts | undefined>;
  /** What load found for the service, without running anything. */
  get(name: string): ServicePorts | undefined;
  /** Forgets them all (after a reload: an admin may have changed a service). */
  clear(): void;
}

/** The cache over `run`; a name that is not a firewalld name, or includes nested past 4, is not looked up. */
export function createServiceCache(run: RunTool): ServiceCache {
  const services = new Map<string, ServicePorts | undefined>();
  const load = async (name: string, depth = 0): Promise<ServicePorts | undefined> => {
    if (services.has(name)) return services.get(name);
    if (!FIREWALLD_NAME.test(name) || depth > 4) return undefined;
    const result = await run(['firewall-cmd', `--info-service=${name}`]);
    let service: ServicePorts | undefined;
    if (result.exitCode === 0) {
      const info = parseServiceInfo(result.stdout);
      service = { ports: info.ports, protocols: info.protocols, destination: info.destination };
      for (const included of info.includes) {
        const more = await load(included, depth + 1);
        if (more !== undefined) {
          service.ports.push(...more.ports);
          service.protocols.push(...more.protocols);
        }
      }
    }
    services.set(name, service);
    return service;
  };
  return {
    load: (name) => load(name),
    get: (name) => services.get(name),
    clear: () => services.clear(),
  };
}
