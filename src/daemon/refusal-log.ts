import type { RefusedHolder } from '../model.ts';

/** How much one user may make the daemon say about refusals. */
export interface RefusalLogLimits {
  /** Refusal lines per user per window; beyond that they are counted, and said once as a sum. */
  linesPerWindow: number;
  windowMs: number;
  /** A logged reason is cut to this many characters. */
  maxReasonChars: number;
}

export const DEFAULT_REFUSAL_LOG_LIMITS: RefusalLogLimits = {
  linesPerWindow: 10,
  windowMs: 60_000,
  maxReasonChars: 300,
};

/** A line the daemon should log. */
export type RefusalLine =
  | { event: 'refused'; fields: { port: number; pid: number; user: string; exe: string; reason: string } }
  | { event: 'refusals-suppressed'; fields: { user: string; uid: number; count: number; window_s: number } };

/**
 * Decides which refusals to log: each refused holder once (per pid, port and reason) while it still
 * holds its socket — the memory of what was said is pruned to the current refusals on every call, so
 * it never outgrows them — and at most `linesPerWindow` lines per user per window; what was held back
 * is said as one count of distinct refusals when that user's window ends. Pure: the caller passes the clock.
 */
export function createRefusalLog(limits: RefusalLogLimits = DEFAULT_REFUSAL_LOG_LIMITS) {
  let said = new Set<string>();
  const windows = new Map<number, { start: number; lines: number; held: Set<string>; user: string }>();
  return (refused: readonly RefusedHolder[], now: number): RefusalLine[] => {
    const lines: RefusalLine[] = [];
    for (const [uid, window] of windows) {
      if (now - window.start < limits.windowMs) continue;
      if (window.held.size > 0) {
        lines.push({
          event: 'refusals-suppressed',
          fields: {
            user: window.user,
            uid,
            count: window.held.size,
            window_s: Math.round(limits.windowMs / 1000),
          },
        });
      }
      windows.delete(uid);
    }
    const current = new Set<string>();
    for (const holder of refused) {
      const reason = holder.reason.slice(0, limits.maxReasonChars);
      const key = `${holder.pid}:${holder.port}:${reason}`;
      current.add(key);
      if (said.has(key)) continue;
      const window = windows.get(holder.uid) ?? {
        start: now,
        lines: 0,
        held: new Set<string>(),
        user: holder.user,
      };
      windows.set(holder.uid, window);
      if (window.lines >= limits.linesPerWindow) {
        window.held.add(key);
        continue;
      }
      window.lines += 1;
      lines.push({
        event: 'refused',
        fields: { port: holder.port, pid: holder.pid, user: holder.user, exe: holder.exe, reason },
      });
    }
    // Only refusals still present are remembered; a held-back one is not, so it is tried again later.
    said = new Set([...current].filter((key) => said.has(key) || lines.some((line) => matches(line, key))));
    return lines;
  };
}

/** True when a refused line is the one for key ("pid:port:reason"). */
function matches(line: RefusalLine, key: string): boolean {
  return line.event === 'refused' && `${line.fields.pid}:${line.fields.port}:${line.fields.reason}` === key;
}
