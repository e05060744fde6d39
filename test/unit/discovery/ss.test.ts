import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseV6Only } from '../../../src/discovery/ss.ts';

// Real `ss -Hluna -e` lines (iproute2 6.1, Linux 6.18), then a spoof attempt.
const OUTPUT = [
  'UNCONN 0      0      [::]:60290 [::]:* ino:998348 sk:4 cgroup:/ v6only:1 <->',
  'UNCONN 0      0         *:60291    *:* ino:998349 sk:5 cgroup:/ v6only:0 <->',
  'UNCONN 0      0      0.0.0.0:60292 0.0.0.0:* ino:998350 sk:6 cgroup:/user.slice <->',
  'UNCONN 0      0      [::]:60293 [::]:* ino:998351 sk:7 cgroup:/user.slice/evil v6only:1 x v6only:0 <->',
  '',
].join('\n');

describe('parseV6Only', () => {
  it('takes the inodes marked v6only:1, trusting the last v6only token of a line (after the cgroup)', () => {
    assert.deepEqual([...parseV6Only(OUTPUT)], [998348]);
  });
});
