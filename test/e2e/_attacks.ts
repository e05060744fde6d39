// What a hostile local user runs against their own genuine mosh-server, shared by the e2e tests.

/**
 * Python that takes a copy of mosh-server's UDP socket (pid in argv[1], as the lab sees it) with
 * pidfd_getfd(2) and keeps it: prints "holding FD socket:[INODE]", or "errno N" when not allowed.
 */
export const GRAB_SCRIPT = [
  'import ctypes, os, sys, time',
  'pid = int(sys.argv[1])',
  "fds = [f for f in os.listdir(f'/proc/{pid}/fd') if os.readlink(f'/proc/{pid}/fd/{f}').startswith('socket:')]",
  'libc = ctypes.CDLL(None, use_errno=True)',
  'fd = libc.syscall(438, os.pidfd_open(pid), int(fds[0]), 0)  # SYS_pidfd_getfd',
  "print(f'errno {ctypes.get_errno()}' if fd < 0 else f'holding {fd} ' + os.readlink(f'/proc/self/fd/{fd}'), flush=True)",
  'time.sleep(55)',
].join('\n');
