import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { escapeControls, table, terminalText } from '../../../src/cli/format.ts';

// biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for control characters
const ANY_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

test('a forged exe name (newlines, ANSI, C1 CSI, bidi override) cannot make lines or escapes', () => {
  const exe = '/tmp/x\n  60001/udp pid 1 user root exe /usr/bin/mosh-server\u001b[2J\u009b31m\u202e';
  const text = terminalText(exe);
  assert.doesNotMatch(text, ANY_CONTROL);
  assert.equal(
    text,
    '/tmp/x\\n  60001/udp pid 1 user root exe /usr/bin/mosh-server\\u001b[2J\\u009b31m\\u202e',
  );
  const rendered = table([
    ['USER', 'EXE'],
    ['alice', exe],
  ]);
  assert.equal(rendered.split('\n').length, 2, 'one line per row');
  assert.doesNotMatch(rendered.replaceAll('\n', ''), ANY_CONTROL);
});

test('output escaping keeps newlines and tabs, and keeps JSON valid and equal', () => {
  assert.equal(escapeControls('a\tb\nc\u001bd'), 'a\tb\nc\\u001bd');
  fc.assert(
    fc.property(fc.string({ unit: 'binary' }), (value) => {
      const json = JSON.stringify({ value });
      assert.deepEqual(JSON.parse(escapeControls(json)), { value });
      assert.doesNotMatch(terminalText(value), ANY_CONTROL);
    }),
  );
});
