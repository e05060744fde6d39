// A node:test reporter beside the TAP one: it lists every skipped e2e test with its reason, and when
// skips are not allowed (CI=true, or MOSHWALL_E2E=require as .ci/run sets it) it makes the run fail.
// Every e2e test skips unless run as root; without this a non-root or tool-less CI run would be green
// with nothing proven.

/** Whether a skipped test fails the run. */
function skipsFail(env) {
  return env.CI === 'true' || env.MOSHWALL_E2E === 'require';
}

/** Reads the runner's events; yields one summary of the skips at the end (nothing when there were none). */
export default async function* noSkips(source) {
  const skipped = [];
  for await (const event of source) {
    if (event.type !== 'test:pass' && event.type !== 'test:fail') continue;
    const reason = event.data.skip;
    if (reason === undefined || reason === false) continue;
    skipped.push(
      `${event.data.name} (${event.data.file ?? 'unknown file'}): ${reason === true ? 'skipped' : reason}`,
    );
  }
  if (skipped.length === 0) return;
  const fail = skipsFail(process.env);
  yield `${skipped.length} e2e test(s) skipped${fail ? ', which fails this run (CI=true or MOSHWALL_E2E=require)' : ''}:\n`;
  yield `${skipped.map((line) => `  - ${line}`).join('\n')}\n`;
  if (fail) process.exitCode = 1;
}
