import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import fc from 'fast-check';
import { parseConfig } from '../../../src/config.ts';
import { MAX_REQUEST_BYTES, parseRequest } from '../../../src/daemon/protocol.ts';
import { ConfigError } from '../../../src/errors.ts';
import { damaged, holds, parsesOrRefuses, RUNS, reportCases } from './_arbitraries.ts';

const EXAMPLE = readFileSync(new URL('../../../docs/moshwall.example.toml', import.meta.url), 'utf8');
const FILE = '/etc/moshwall/test.toml';

/** The example config with every commented-out key switched on, so damage can reach every check. */
const EVERY_KEY = EXAMPLE.replace(/^# ([a-z_]+ = .*)$/gm, '$1');

test('config: damaged TOML is a config or a ConfigError naming the file; a config always holds a valid range', () => {
  holds(
    fc.property(fc.oneof(damaged(EXAMPLE), damaged(EVERY_KEY)), (text) => {
      const config = parsesOrRefuses(() => parseConfig(text, FILE), FILE);
      if (config === undefined) return;
      const { first, last } = config.portRange;
      assert.ok(
        Number.isInteger(first) && Number.isInteger(last) && 1 <= first && first <= last && last <= 65535,
      );
      assert.ok(Number.isInteger(config.maxSessionsPerUser) && config.maxSessionsPerUser >= 0);
      assert.ok(config.moshServer.startsWith('/') && config.lockFile.startsWith('/'));
    }),
    { numRuns: RUNS },
  );
});

test('config: any value of any known key is taken or refused with file, line and key', () => {
  const keys = [...EVERY_KEY.matchAll(/^([a-z_]+) = /gm)].map((match) => match[1] ?? '');
  const value = fc.oneof(
    fc.jsonValue({ maxDepth: 1 }).map((json) => JSON.stringify(json) ?? '""'),
    fc.integer().map(String),
    fc.string({ maxLength: 20 }).map((text) => JSON.stringify(text)),
    fc.constantFrom(
      '"60000:61000"',
      '"61000:60000"',
      '"0:65535"',
      '"1:65536"',
      '[""]',
      '["0.0.0.0/0"]',
      '["10.0.0.1/8"]',
      '-1',
      '1e9',
      'true',
      'inf',
      'nan',
    ),
  );
  holds(
    fc.property(fc.constantFrom(...keys), value, (key, text) => {
      try {
        parseConfig(`# comment\n${key} = ${text}\n`, FILE);
      } catch (error) {
        if (!(error instanceof ConfigError)) throw error;
        assert.equal(error.context.file, FILE);
        if (error.context.key !== undefined) {
          assert.equal(error.context.key, key);
          assert.equal(error.context.line, 2);
          assert.ok(error.message.startsWith(`${FILE}:2: ${key}: `), error.message);
        }
      }
    }),
    { numRuns: RUNS },
  );
});

const RANGE = { first: 60000, last: 61000 };

test('socket protocol: any line is a request or an error reply, never a throw; an open is always in the range', () => {
  const line = fc.oneof(
    fc.string({ unit: 'binary', maxLength: MAX_REQUEST_BYTES + 20 }),
    fc.jsonValue({ maxDepth: 3 }).map((json) => JSON.stringify(json) ?? ''),
    fc
      .record(
        {
          op: fc.oneof(fc.constantFrom('open', 'ping', 'close', 'OPEN', ''), fc.jsonValue({ maxDepth: 1 })),
          port: fc.oneof(
            fc.integer({ min: 59990, max: 61010 }),
            fc.double(),
            fc.string({ maxLength: 6 }),
            fc.constant(null),
          ),
          extra: fc.jsonValue({ maxDepth: 1 }),
        },
        { requiredKeys: [] },
      )
      .map((object) => JSON.stringify(object)),
  );
  holds(
    fc.property(line, (text) => {
      const request = parseRequest(text, RANGE);
      if ('error' in request) {
        assert.ok(request.error.length > 0 && request.error.length < 200, request.error);
        return;
      }
      if (request.op === 'open') {
        assert.ok(Number.isInteger(request.port), text);
        assert.ok(request.port >= RANGE.first && request.port <= RANGE.last, text);
      }
    }),
    { numRuns: RUNS * 3 },
  );
});

reportCases('config-protocol');
