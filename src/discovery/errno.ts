/** The errno code ("ENOENT", "EACCES", …) a failed read carries, or undefined for other errors. */
export function errnoCode(error: unknown): string | undefined {
  if (error instanceof Error && 'code' in error && typeof error.code === 'string') return error.code;
  return undefined;
}

/** Whether an errno code means the file (or the process behind a /proc path) is gone. */
export function isGone(code: string | undefined): boolean {
  return code === 'ENOENT' || code === 'ESRCH';
}

/** Whether an errno code means we were not allowed to read. */
export function isDenied(code: string | undefined): boolean {
  return code === 'EACCES' || code === 'EPERM';
}

/** What an admin can do about a /proc read that failed with `code` (the "fix" of an EPROC error). */
export function procReadFix(code: string | undefined): string {
  if (isDenied(code)) {
    return 'fix: run moshwall as root; under systemd keep CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH in the unit (see deploy/moshwall.service)';
  }
  if (code === 'ENOENT') return 'fix: mount procfs at /proc (mount -t proc proc /proc) and retry';
  return 'fix: check that procfs is mounted at /proc and readable (findmnt /proc), then retry';
}
