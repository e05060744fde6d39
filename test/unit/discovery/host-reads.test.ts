import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  hostHasIpv6,
  ioUringDisabled,
  readGroups,
  readPtraceScope,
  readSocketCounts,
  readUdp,
} from '../../../src/discovery/host-reads.ts';
import { createFakeProc } from './fake-proc.ts';

const UDP_HEADER =
  '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n';

describe('host reads through the ProcReader', () => {
  it('the group directory from /etc/group', () => {
    const { reader } = createFakeProc(
      new Map([['/etc/group', { text: 'root:x:0:\nmosh:x:1500:alice,bob\n' }]]),
    );
    const groups = readGroups(reader);
    assert.equal(groups.gidOf('mosh'), 1500);
    assert.deepEqual(groups.membersOf('mosh'), ['alice', 'bob']);
    assert.deepEqual(groups.membersOf('none'), []);
  });

  it('IPv6: only a non-loopback address counts; no file means none', () => {
    const loopbackOnly = '00000000000000000000000000000001 01 80 10 80       lo\n';
    const global = `${loopbackOnly}20010db8000000000000000000000001 02 40 00 80     eth0\n`;
    const at = (text: string) => createFakeProc(new Map([['/proc/net/if_inet6', { text }]])).reader;
    assert.equal(hostHasIpv6(at(loopbackOnly)), false);
    assert.equal(hostHasIpv6(at(global)), true);
    assert.equal(
      hostHasIpv6(createFakeProc(new Map([['/proc/net/if_inet6', { error: 'ENOENT' }]])).reader),
      false,
    );
  });

  it('io_uring_disabled: its number, or null on a kernel without it', () => {
    const set = createFakeProc(new Map([['/proc/sys/kernel/io_uring_disabled', { text: '2\n' }]])).reader;
    assert.equal(ioUringDisabled(set), 2);
    const none = createFakeProc(new Map([['/proc/sys/kernel/io_uring_disabled', { error: 'ENOENT' }]]));
    assert.equal(ioUringDisabled(none.reader), null);
  });

  it('/proc/net/udp6 may be missing (IPv6 off); any other failure is thrown', () => {
    const withoutV6 = createFakeProc(
      new Map([
        ['/proc/net/udp', { text: UDP_HEADER }],
        ['/proc/net/udp6', { error: 'ENOENT' }],
      ]),
    );
    assert.deepEqual(readUdp(withoutV6.reader), { udp: UDP_HEADER, udp6: undefined });
    const denied = createFakeProc(
      new Map([
        ['/proc/net/udp', { text: UDP_HEADER }],
        ['/proc/net/udp6', { error: 'EACCES' }],
      ]),
    );
    assert.throws(() => readUdp(denied.reader), /EACCES/);
  });

  it('socket counts: the UDP lines of both sockstat files, or undefined when they cannot be read', () => {
    const sockstat = 'sockets: used 10\nUDP: inuse 3 mem 1\nUDPLITE: inuse 0\nRAW: inuse 0\n';
    const sockstat6 = 'TCP6: inuse 1\nUDP6: inuse 2\nUDPLITE6: inuse 0\n';
    const both = createFakeProc(
      new Map([
        ['/proc/net/sockstat', { text: sockstat }],
        ['/proc/net/sockstat6', { text: sockstat6 }],
      ]),
    );
    assert.equal(
      readSocketCounts(both.reader),
      'UDP: inuse 3 mem 1;UDPLITE: inuse 0;UDP6: inuse 2;UDPLITE6: inuse 0',
    );
    const noV6 = createFakeProc(
      new Map([
        ['/proc/net/sockstat', { text: sockstat }],
        ['/proc/net/sockstat6', { error: 'ENOENT' }],
      ]),
    );
    assert.equal(readSocketCounts(noV6.reader), 'UDP: inuse 3 mem 1;UDPLITE: inuse 0;');
    const broken = createFakeProc(new Map([['/proc/net/sockstat', { error: 'EIO' }]]));
    assert.equal(readSocketCounts(broken.reader), undefined);
  });

  it('ptrace_scope: its value, or undefined without Yama', () => {
    const at = (node: { text: string } | { error: string }) =>
      createFakeProc(new Map([['/proc/sys/kernel/yama/ptrace_scope', node]])).reader;
    assert.equal(readPtraceScope(at({ text: '2\n' })), 2);
    assert.equal(readPtraceScope(at({ error: 'ENOENT' })), undefined);
  });
});
