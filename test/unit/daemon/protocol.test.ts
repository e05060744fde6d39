import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_REQUEST_BYTES, parseRequest, parseResponse } from '../../../src/daemon/protocol.ts';

const range = { first: 60000, last: 61000 };

describe('parseRequest', () => {
  it('reads open and ping', () => {
    assert.deepEqual(parseRequest('{"op":"open","port":60001}', range), { op: 'open', port: 60001 });
    assert.deepEqual(parseRequest('{"op":"ping"}', range), { op: 'ping' });
  });
  const hostile: [string, string, RegExp][] = [
    ['garbage', 'hello', /not JSON/],
    ['an array', '[1,2]', /not a JSON object/],
    ['null', 'null', /not a JSON object/],
    ['unknown op', '{"op":"flush"}', /unknown op "flush"/],
    ['no op', '{"port":60001}', /unknown op null/],
    ['extra field', '{"op":"open","port":60001,"user":"root"}', /unknown field "user"/],
    ['port as text', '{"op":"open","port":"60001"}', /integer from 1 to 65535, got "60001"/],
    ['fractional port', '{"op":"open","port":60001.5}', /integer/],
    ['port zero', '{"op":"open","port":0}', /integer/],
    ['port out of range', '{"op":"open","port":22}', /port 22 is outside the mosh range 60000:61000/],
    ['ping with port', '{"op":"ping","port":1}', /ping takes no port/],
    [
      'huge line',
      `{"op":"open","port":60001,"x":"${'a'.repeat(MAX_REQUEST_BYTES)}"}`,
      /longer than 512 bytes/,
    ],
    ['prototype games', '{"__proto__":{"op":"open"},"port":60001}', /unknown field "__proto__"|unknown op/],
  ];
  for (const [name, line, message] of hostile) {
    it(`refuses ${name}`, () => {
      const parsed = parseRequest(line, range);
      assert.ok('error' in parsed, JSON.stringify(parsed));
      assert.match(parsed.error, message);
    });
  }
});

describe('parseResponse', () => {
  it('reads answers and rejects what is not one', () => {
    assert.deepEqual(parseResponse('{"ok":true,"op":"ping","version":"1"}'), {
      ok: true,
      op: 'ping',
      version: '1',
    });
    assert.equal(parseResponse('{"ok":"yes"}'), undefined);
    assert.equal(parseResponse('nope'), undefined);
  });
});

describe('the opened op (status asks when ports were opened)', () => {
  it('parses {"op":"opened"} and refuses a port with it', () => {
    assert.deepEqual(parseRequest('{"op":"opened"}', { first: 60000, last: 61000 }), { op: 'opened' });
    assert.deepEqual(parseRequest('{"op":"opened","port":60001}', { first: 60000, last: 61000 }), {
      error: 'opened takes no port',
    });
  });
});
