/** Files moshwall installs, as text: the single source of deploy/ and docs/ copies (a test keeps them equal). */

/** The systemd unit for a bundle at bundlePath run by the node binary at nodePath. */
export function systemdUnit(nodePath: string, bundlePath: string): string {
  return `# moshwall daemon: opens firewall ports for genuine mosh-server processes only.
# Install: /usr/lib/systemd/system/moshwall.service (moshwall install does it; see README).
[Unit]
Description=moshwall: firewall ports for genuine mosh sessions only
Documentation=file:///usr/share/doc/moshwall/README.md
# Our rules live in the firewall's own tables: start once the firewall is up.
After=network-pre.target ufw.service nftables.service firewalld.service netfilter-persistent.service
Wants=network-pre.target

[Service]
Type=simple
ExecStart=${nodePath} ${bundlePath} daemon
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=2s
# Exit 3 (bad config) and 4 (no firewall) need an admin; do not restart-loop on them.
RestartPreventExitStatus=3 4
# A bound on what a runaway (or a client that found a way to make it grow) can take from the host.
MemoryMax=256M
TasksMax=256
# /run/moshwall: the shim's socket (every user may connect); moshwall makes lock.d/ in it 0700 itself.
RuntimeDirectory=moshwall
RuntimeDirectoryMode=0755

# What the job needs: read every process's /proc entries (ptrace access, map_files), change the
# firewall, and nothing else.
CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW CAP_SYS_PTRACE CAP_SYS_ADMIN CAP_DAC_READ_SEARCH CAP_SYS_MODULE
NoNewPrivileges=yes
ProtectSystem=strict
# ufw keeps its rules in /etc/ufw; iptables and ufw take their locks in /run.
ReadWritePaths=/etc/ufw /run
ProtectHome=read-only
PrivateTmp=yes
PrivateDevices=yes
ProtectClock=yes
ProtectHostname=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
UMask=0022

[Install]
WantedBy=multi-user.target
`;
}

/** The commented default config written to /etc/moshwall/moshwall.toml when none exists. */
export const EXAMPLE_CONFIG = `# /etc/moshwall/moshwall.toml — every key is optional; the values shown are the defaults.
# A key moshwall does not know, or a bad value, is an error naming this file, the line and the key,
# and then nothing is changed.

# Firewall to manage: "ufw", "nftables", "iptables", "firewalld", or "auto" (UFW if active, else
# firewalld if running, else nftables, else iptables; it refuses to choose while UFW and firewalld both
# run, since a rule would land under the other manager).
backend = "ufw"
# nftables only: the admin's table and input chain our jump goes in (found automatically for the
# stock Debian/Ubuntu/RHEL layouts). nftables and iptables rules are runtime-only: the daemon re-adds.
# nftables_table = "inet filter"
# nftables_chain = "input"
# UFW only: "auto" (the default) opens and closes a port with one ipset change (a few ms) instead of a
# UFW reload (~170 ms to add, ~300 ms to delete), matched by rules moshwall places into UFW's chain at
# run time (no UFW file edited), where ipset is installed; else classic \`ufw allow\` rules. "runtime"
# forces the sets; "ipset" matches them from a hook \`moshwall install\` adds to /etc/ufw/after.rules,
# after6.rules and before.init (run install again after switching); "off" means classic rules.
# Admin rules keep precedence in every mode (our match comes after them).
# ufw_fast_path = "auto"
# iptables only: force "nft" or "legacy" (default: the system's iptables).
# iptables_variant = "nft"
# firewalld only: the zone our runtime rich rules go in (default: the zone of the interface that
# carries the default route, else firewalld's default zone). Never written --permanent.
# firewalld_zone = "public"

# UDP ports mosh-server may use ("first:last", inclusive). mosh's own default is 60000:61000.
port_range = "60000:61000"

# Who may get a port. Both empty: every local user (like the original login script).
# Otherwise a user gets a port when named in allow_users or a member of a group in allow_groups.
allow_users = []
allow_groups = []

# Most ports one user may hold open at once (the oldest sessions win). 0: no cap.
max_sessions_per_user = 10

# Client networks allowed to reach a session's port. Empty: anywhere — mosh roams between networks,
# so pin this only if your users always come from known networks. IPv4 and IPv6 CIDRs.
source_networks = []

# Executable names that count as mosh-server, and the real binary (doctor checks it).
# A process counts only if its executable and every executable mapping are owned by root and not
# writable by others, in directories with the same property, and it is not being traced.
mosh_server_names = ["mosh-server"]
mosh_server = "/usr/bin/mosh-server"
# A mosh-server counts only if its running executable (and every executable mapping) is the very
# file, by device and inode, that root sees at its path here: a user's bind mount in a namespace of
# their own is refused. Holders in another user or mount namespace than the host's (moshwall's own or
# PID 1's) are refused too unless this is true (e.g. pam_namespace logins); the file checks still apply.
allow_foreign_namespaces = false

# Serializes concurrent runs; a second run waits up to lock_timeout_ms, then fails with exit 5 naming
# who holds it. moshwall makes the file 0600 in a 0700 directory of root's (the login hook's lock and
# deadline go beside it), so no other user can open it, let alone hold it.
lock_file = "/run/moshwall/lock.d/lock"
lock_timeout_ms = 60000

# Every firewall command is killed after this long and reported as an error.
command_timeout_ms = 15000

# Daemon (\`moshwall daemon\`, run by systemd): how often /proc/net/udp{,6} is checked for changed
# sockets (a full scan runs only when they changed), and the firewall checked against the sessions at
# least this often (every process walked again at least every 10th time; the watch below in between).
poll_interval_ms = 250
resync_interval_ms = 30000

# Daemon: between reconciles, each open session's mosh-server is checked (a tracer attached, its uid
# changed) and its owner's other processes are looked through for its socket this often. A socket
# leaving genuine hands closes its port within about this long and a quarter of a second more; the
# cost grows with sessions (at 1000, each with a shell beside it: ~1 % of a core at 1500). With
# kernel.yama.ptrace_scope 2 or 3 no user can do either to a process, and the daemon checks every 10 s.
watch_interval_ms = 1500

# The socket the mosh-server shim asks through (every local user may connect; a request is only a
# nudge: the daemon verifies everything in /proc).
socket_path = "/run/moshwall/moshwall.sock"

# When the daemon stops (SIGTERM): "keep" live sessions' rules open, or "flush" every rule of ours.
on_stop = "keep"

# The shim waits at most this long for the daemon before passing MOSH CONNECT on anyway.
shim_timeout_ms = 3000

# Login-hook mode (\`sudo -n moshwall hook\` from a login script, for hosts without the daemon): how long
# the hook keeps watching in the background for the mosh-server being started.
hook_watch_ms = 20000
`;
