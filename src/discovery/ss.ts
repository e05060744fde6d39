/**
 * Inodes of the sockets `ss -Hluna -e` shows with "v6only:1" (IPV6_V6ONLY, which /proc/net/udp6 does
 * not show). Each line has "ino:N" before the cgroup path and "v6only:B" after it; a cgroup path may
 * hold spaces (a user can name their own), so the first ino and the last v6only token of a line count.
 */
export function parseV6Only(text: string): Set<number> {
  const inodes = new Set<number>();
  for (const line of text.split('\n')) {
    const tokens = line.trim().split(/\s+/);
    const inode = tokens.find((token) => /^ino:\d+$/.test(token));
    const v6only = [...tokens].reverse().find((token) => token.startsWith('v6only:'));
    if (inode !== undefined && v6only === 'v6only:1') inodes.add(Number(inode.slice('ino:'.length)));
  }
  return inodes;
}
