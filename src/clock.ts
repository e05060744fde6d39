/** A timer handle as the clock's setTimeout and setInterval return it. */
export type Timer = ReturnType<typeof setTimeout>;

/**
 * Time as a dependency (house style 13): a monotonic `now` in ms and the timers the backends and their
 * watchers use, so tests run them on node:test's mocked timers and a counter instead of sleeping.
 */
export interface Clock {
  now(): number;
  /** Calls fn once after ms; the timer never keeps the process alive. */
  setTimeout(fn: () => void, ms: number): Timer;
  /** Calls fn every ms; the timer never keeps the process alive. */
  setInterval(fn: () => void, ms: number): Timer;
  clear(timer: Timer | undefined): void;
}

/** Lets the process exit while the timer is pending (mocked timers may have no unref). */
function unref(timer: Timer): Timer {
  (timer as { unref?: () => void }).unref?.();
  return timer;
}

/**
 * The machine's clock: performance.now and the global timers, looked up at each call (so node:test's
 * mock.timers, installed after import, is the one used).
 */
export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => unref(globalThis.setTimeout(fn, ms)),
  setInterval: (fn, ms) => unref(globalThis.setInterval(fn, ms)),
  // Either clear ends either kind of the machine's timers; mocked ones need their own kind's.
  clear: (timer) => {
    if (timer === undefined) return;
    globalThis.clearTimeout(timer);
    globalThis.clearInterval(timer);
  },
};
