/* What the firewalld backend watches: firewalld's D-Bus signals, as dbus-monitor prints them. */

/** The D-Bus match rules for firewalld's Reloaded signal and for firewalld (re)taking its bus name. */
export const FIREWALLD_WATCH_ARGV = [
  'dbus-monitor',
  '--system',
  "type='signal',interface='org.fedoraproject.FirewallD1',member='Reloaded'",
  "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.fedoraproject.FirewallD1'",
];

/** What a dbus-monitor line says happened to firewalld, or undefined for every other line. */
export function firewalldEvent(line: string): string | undefined {
  if (!line.startsWith('signal ')) return undefined;
  if (line.includes('interface=org.fedoraproject.FirewallD1; member=Reloaded')) return 'firewalld reloaded';
  if (line.includes('member=NameOwnerChanged')) return 'firewalld started or stopped';
  return undefined;
}
