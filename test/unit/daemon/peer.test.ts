import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { identifyPeers, parseUnixSockets, peerPids, socketInode } from '../../../src/daemon/peer.ts';
import type { ExecResult } from '../../../src/exec.ts';

// Lines as `ss -xpnH` printed them on Debian 12 (iproute2 6.1), columns padded as it pads them.
const LISTING = [
  'u_str ESTAB 0      0      /run/moshwall/daemon.sock 5909388 * 5909387 users:(("node",pid=100,fd=21))',
  'u_str ESTAB 0      0                * 1527    * 1526                                      ',
  'u_str ESTAB 0      0                * 5909387 * 5909388 users:(("perl",pid=4242,fd=3),("perl",pid=4243,fd=3))',
  'u_str LISTEN 0 4096 /run/moshwall/daemon.sock 5909000 * 0 users:(("node",pid=100,fd=20))',
  'u_dgr UNCONN 0 0 /run/systemd/notify 13 * 0',
  'garbage line',
].join('\n');

const ok = (stdout: string): ExecResult => ({ argv: [], exitCode: 0, stdout, stderr: '', durationMs: 1 });

describe('daemon peer identity (ss -xpnH)', () => {
  test('parses stream socket ends with their peers and holders, skipping other lines', () => {
    const ends = parseUnixSockets(LISTING);
    assert.deepEqual(
      ends.map((end) => [end.inode, end.peerInode, end.pids]),
      [
        [5909388, 5909387, [100]],
        [1527, 1526, []],
        [5909387, 5909388, [4242, 4243]],
        [5909000, 0, [100]],
      ],
    );
  });

  test('the pids on the other end of our inode; an inode nobody points at has none', () => {
    const pids = peerPids(parseUnixSockets(LISTING), [5909388, 777]);
    assert.deepEqual(
      [...pids],
      [
        [5909388, [4242, 4243]],
        [777, []],
      ],
    );
  });

  test('socket inodes from fd links', () => {
    assert.equal(socketInode('socket:[5909387]'), 5909387);
    assert.equal(socketInode('pipe:[12]'), undefined);
    assert.equal(socketInode('/dev/null'), undefined);
  });

  test('the uid is taken only from a pid that /proc shows holding the other end (a reused pid does not count)', async () => {
    const uids = await identifyPeers(
      {
        run: async () => ok(LISTING),
        // 4242 was reused by a process that does not hold the socket; 4243 does.
        socketInodesOf: (pid) => (pid === 4243 ? new Set([5909387]) : new Set([1, 2])),
        realUid: (pid) => (pid === 4242 ? 0 : 1001),
      },
      [5909388],
    );
    assert.deepEqual([...uids], [[5909388, 1001]]);
  });

  test('a failed ss or a vanished peer leaves the connection unidentified', async () => {
    const failed = await identifyPeers(
      {
        run: async () => ({ ...ok(''), exitCode: 1 }),
        socketInodesOf: () => new Set([5909387]),
        realUid: () => 1001,
      },
      [5909388],
    );
    assert.deepEqual([...failed], [[5909388, undefined]]);
    const gone = await identifyPeers(
      { run: async () => ok(LISTING), socketInodesOf: () => undefined, realUid: () => undefined },
      [5909388],
    );
    assert.deepEqual([...gone], [[5909388, undefined]]);
  });
});
