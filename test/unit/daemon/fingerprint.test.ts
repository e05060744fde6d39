import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fingerprintHasPort, socketFingerprint, socketsOnPorts } from '../../../src/daemon/fingerprint.ts';
import { parseProcNetUdp } from '../../../src/discovery/udp.ts';

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
  it('reads the same family, port and inode as the full parse of discovery/udp.ts', () => {
    const range = { first: 1, last: 65535 };
    const expected = [...parseProcNetUdp(udp, 'v4'), ...parseProcNetUdp(udp6, 'v6')]
      .map((socket) => `${socket.family}:${socket.localPort}:${socket.inode}`)
      .sort()
      .join(',');
    assert.ok(expected.split(',').length >= 2);
    assert.equal(socketFingerprint(udp, udp6, range), expected);
  });
  it('changes when a line it cannot read changes, so the reconcile that follows can report it', () => {
    const range = { first: 60000, last: 61000 };
    const broken = (tail: string) => `${udp}garbage ${tail}\n`;
    assert.notEqual(socketFingerprint(broken('a'), udp6, range), socketFingerprint(udp, udp6, range));
    assert.notEqual(socketFingerprint(broken('a'), udp6, range), socketFingerprint(broken('b'), udp6, range));
  });
  it('tells whether a fingerprint lists a port', () => {
    const all = socketFingerprint(udp, udp6, { first: 60000, last: 61000 });
    assert.equal(fingerprintHasPort(all, 60777), true);
    assert.equal(fingerprintHasPort(all, 60778), true);
    assert.equal(fingerprintHasPort(all, 6077), false);
    assert.equal(fingerprintHasPort(all, 777), false);
    assert.equal(fingerprintHasPort(undefined, 60777), false);
  });
});

describe('socketsOnPorts', () => {
  it('maps the inodes of the sockets on the given ports (either family) to their port, nothing else', () => {
    const fingerprint = 'v4:60001:5001,v4:60002:5002,v6:60001:6001,?garbage line';
    assert.deepEqual(
      [...socketsOnPorts(fingerprint, new Set([60001]))],
      [
        [5001, 60001],
        [6001, 60001],
      ],
    );
    assert.equal(socketsOnPorts(fingerprint, new Set()).size, 0);
    assert.equal(socketsOnPorts(undefined, new Set([60001])).size, 0);
    assert.equal(socketsOnPorts('error: cannot read /proc/net/udp', new Set([60001])).size, 0);
  });
});
