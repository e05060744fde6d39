import { readFileSync, statSync } from 'node:fs';

// The install code's file reads on the real machine (its plans stay pure over these).

/** The text of a file, or undefined when it cannot be read (absent, a directory, no permission). */
export function readTextIfAny(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/** The permission bits of a file (mode & 0o7777), or undefined when it cannot be stat'ed. */
export function modeIfAny(path: string): number | undefined {
  try {
    return statSync(path).mode & 0o7777;
  } catch {
    return undefined;
  }
}
