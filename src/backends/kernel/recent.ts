import type { Clock } from '../../clock.ts';

/** A value the backend read from its firewall, trusted for a short while after the reading. */
export interface Recent<T> {
  /** Keeps `value` as read now. */
  remember(value: T): void;
  /** The value if it was read at most `trustedMs` ago, else undefined. */
  recent(): T | undefined;
  /** Drops it (after a refusal: the firewall is not what we thought). */
  forget(): void;
}

/**
 * The trust-a-recent-listing cache: a reconcile lists the firewall, then allows and revokes at once;
 * the changes may rely on that listing instead of reading it again.
 */
export function createRecent<T>(clock: Pick<Clock, 'now'>, trustedMs: number): Recent<T> {
  let known: { value: T; at: number } | undefined;
  return {
    remember(value) {
      known = { value, at: clock.now() };
    },
    recent() {
      return known !== undefined && clock.now() - known.at <= trustedMs ? known.value : undefined;
    },
    forget() {
      known = undefined;
    },
  };
}
