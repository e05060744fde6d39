// The one polling helper of the e2e tests and benches: wait for a condition, or for a value, with a
// deadline. Nothing else in test/e2e or bench/ loops on a timer.
import { setTimeout as sleep } from 'node:timers/promises';

/** Polls `check` every `everyMs` until it returns a value (returned) or `ms` pass (undefined). */
export async function pollFor<T>(
  check: () => T | undefined | Promise<T | undefined>,
  ms: number,
  everyMs = 20,
): Promise<T | undefined> {
  const deadline = performance.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() >= deadline) return undefined;
    await sleep(everyMs);
  }
}

/** Polls `check` (sync or async) every `everyMs` until it holds or `ms` pass; true if it held. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  ms: number,
  everyMs = 20,
): Promise<boolean> {
  return (await pollFor(async () => ((await check()) ? true : undefined), ms, everyMs)) === true;
}
