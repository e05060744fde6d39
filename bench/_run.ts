// How every bench script ends: its main's exit code (0 when it returns nothing), or 1 with the error.

/** Runs main and sets the exit code from it; a failure prints `<name> failed: <stack>` and exits 1. */
export function runBench(name: string, main: () => Promise<unknown>): void {
  main().then(
    (code) => {
      process.exitCode = typeof code === 'number' ? code : 0;
    },
    (error: unknown) => {
      process.stderr.write(
        `${name} failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
      );
      process.exitCode = 1;
    },
  );
}
