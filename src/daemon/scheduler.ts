import type { SyncReport } from '../engine.ts';

/** Runs one reconcile; calls onAllowed as soon as new rules are in place. */
export type ReconcileRun = (onAllowed: (report: SyncReport) => void) => Promise<SyncReport>;

/** Serializes reconciles: one at a time, and every request is served by a run that starts after it. */
export interface Scheduler {
  /**
   * Resolves with the report of a run that started after this call, once its allows are in place; or,
   * when `runningServes` says the run going now already covers this request, with that run's report.
   */
  request(runningServes?: () => boolean): Promise<SyncReport>;
  /** Resolves when no run is going and none is queued. */
  idle(): Promise<void>;
}

interface Waiter {
  resolve: (report: SyncReport) => void;
  reject: (error: unknown) => void;
}

/** One run and whom it answers. */
interface Run {
  waiters: Waiter[];
  /** Set once its allows are in place (or it failed: then report stays undefined). */
  answered: boolean;
  report?: SyncReport;
}

/**
 * A single-flight scheduler: while a run goes, requests queue for the next run, and that next run
 * serves all of them (a burst of shim requests costs one reconcile, not one each). A request the
 * running one already covers (the daemon knows: its port was among the sockets when the run began)
 * joins it instead of waiting for the next.
 */
export function createScheduler(run: ReconcileRun): Scheduler {
  let queued: Waiter[] = [];
  let running: Promise<void> | undefined;
  let current: Run | undefined;

  const start = (): void => {
    const thisRun: Run = { waiters: queued, answered: false };
    queued = [];
    current = thisRun;
    const answer = (report: SyncReport) => {
      if (thisRun.answered) return;
      thisRun.answered = true;
      thisRun.report = report;
      for (const waiter of thisRun.waiters) waiter.resolve(report);
    };
    running = run(answer)
      .then(answer, (error: unknown) => {
        if (!thisRun.answered) for (const waiter of thisRun.waiters) waiter.reject(error);
        thisRun.answered = true;
      })
      .finally(() => {
        running = undefined;
        current = undefined;
        if (queued.length > 0) start();
      });
  };

  return {
    request(runningServes) {
      return new Promise<SyncReport>((resolve, reject) => {
        const joined = current;
        if (joined !== undefined && runningServes?.() === true) {
          if (!joined.answered) {
            joined.waiters.push({ resolve, reject });
            return;
          }
          if (joined.report !== undefined) {
            resolve(joined.report);
            return;
          }
        }
        queued.push({ resolve, reject });
        if (!running) start();
      });
    },
    async idle() {
      while (running) await running;
    },
  };
}
