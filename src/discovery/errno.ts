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
