import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
// @ts-expect-error: a plain .mjs reporter (node loads it by path), without type declarations
import noSkips from '../../e2e/_no-skips.mjs';

type Event = { type: string; data: { name: string; file?: string; skip?: string | boolean } };

/** Everything the reporter yields for these events. */
async function report(events: Event[]): Promise<string> {
  async function* source() {
    yield* events;
  }
  let text = '';
  for await (const chunk of (noSkips as (source: AsyncIterable<Event>) => AsyncIterable<string>)(source()))
    text += chunk;
  return text;
}

describe('e2e reporter: a skipped e2e test fails CI', () => {
  const saved = { CI: process.env.CI, MOSHWALL_E2E: process.env.MOSHWALL_E2E, code: process.exitCode };
  beforeEach(() => {
    delete process.env.CI;
    delete process.env.MOSHWALL_E2E;
    process.exitCode = undefined;
  });
  afterEach(() => {
    for (const key of ['CI', 'MOSHWALL_E2E'] as const) {
      if (saved[key] === undefined) delete process.env[key];
      else process.env[key] = saved[key];
    }
    process.exitCode = saved.code;
  });
  const skippedDescribe: Event = {
    type: 'test:pass',
    data: { name: 'ufw lab', file: '/r/test/e2e/x.test.ts', skip: 'the e2e lab needs root' },
  };
  const passed: Event = { type: 'test:pass', data: { name: 'opens', file: '/r/test/e2e/x.test.ts' } };

  it('with MOSHWALL_E2E=require a skip is listed with its reason and sets a failing exit code', async () => {
    process.env.MOSHWALL_E2E = 'require';
    const text = await report([passed, skippedDescribe]);
    assert.match(text, /1 e2e test\(s\) skipped, which fails this run/);
    assert.match(text, /ufw lab \(\/r\/test\/e2e\/x\.test\.ts\): the e2e lab needs root/);
    assert.equal(process.exitCode, 1);
  });

  it('CI=true does the same; t.skip() without a reason counts too', async () => {
    process.env.CI = 'true';
    await report([{ type: 'test:pass', data: { name: 'y', skip: true } }]);
    assert.equal(process.exitCode, 1);
  });

  it('outside CI a skip is only listed, and a run without skips prints nothing', async () => {
    assert.match(await report([skippedDescribe]), /^1 e2e test\(s\) skipped:\n/);
    assert.equal(process.exitCode, undefined);
    process.env.MOSHWALL_E2E = 'require';
    assert.equal(await report([passed]), '');
    assert.equal(process.exitCode, undefined);
  });
});
