import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { socketFingerprint } from '../../../src/daemon/fingerprint.ts';

const udp = readFileSync('test/fixtures/proc/lab/net/udp', 'utf8');
const udp6 = readFileSync('test/fixtures/proc/lab/net/udp6', 'utf8');

describe('socketFingerprint', () => {
  it('lists the sockets in the range, and changes when they change', () => {
    const all = socketFingerprint(udp, udp6, { first: 60000, last: 61000 });
    assert.match(all, /v4:60777:\d+/);
    assert.match(all, /v6:60778:\d+/);
    const narrower = socketFingerprint(udp, udp6, { first: 60777, last: 60777 });
    assert.match(narrower, /^v4:60777:\d+$/);
    assert.notEqual(socketFingerprint(udp, undefined, { first: 60000, last: 61000 }), all);
  });
  it('ignores sockets outside the range', () => {
    assert.equal(socketFingerprint(udp, udp6, { first: 1, last: 2 }), '');
  });
});
