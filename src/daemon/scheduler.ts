import type { SyncReport } from '../engine.ts';

/** Runs one reconcile; calls onAllowed as soon as new rules are in place. */
export type ReconcileRun = (onAllowed: (report: SyncReport) => void) => Promise<SyncReport>;

/** Serializes reconciles: one at a time, and every request is served by a run that starts after it. */
export interface Scheduler {
  /** Resolves with the report of a run that started after this call, once its allows are in place. */
  request(): Promise<SyncReport>;
  /** Resolves when no run is going and none is queued. */
  idle(): Promise<void>;
}

interface Waiter {
  resolve: (report: SyncReport) => void;
  reject: (error: unknown) => void;
}

/**
 * A single-flight scheduler: while a run goes, requests queue for the next run, and that next run
 * serves all of them (a burst of shim requests costs one reconcile, not one each).
 */
export function createScheduler(run: ReconcileRun): Scheduler {
  let queued: Waiter[] = [];
  let running: Promise<void> | undefined;

  const start = (): void => {
    const waiters = queued;
    queued = [];
    let answered = false;
    const answer = (report: SyncReport) => {
      if (answered) return;
      answered = true;
      for (const waiter of waiters) waiter.resolve(report);
    };
    running = run(answer)
      .then(answer, (error: unknown) => {
        if (!answered) for (const waiter of waiters) waiter.reject(error);
        answered = true;
      })
      .finally(() => {
        running = undefined;
        if (queued.length > 0) start();
      });
  };

  return {
    request() {
      const result = new Promise<SyncReport>((resolve, reject) => queued.push({ resolve, reject }));
      if (!running) start();
      return result;
    },
    async idle() {
      while (running) await running;
    },
  };
}
