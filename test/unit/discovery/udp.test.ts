import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProcNetUdp } from '../../../src/discovery/udp.ts';
import { ProcError } from '../../../src/errors.ts';
import { fixture } from './lab.ts';

const V4_HEADER =
  '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops';
const V6_HEADER =
  '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops';

/** One kernel-format line with the given local address word(s) and port (hex). */
function line(local: string, uid = 0, inode = 4242): string {
  const remote = `${'0'.repeat(local.indexOf(':'))}:0000`;
  return ` 1: ${local} ${remote} 07 00000000:00000000 00:00000000 00000000 ${uid} 0 ${inode} 2 0000000000000000 0`;
}

describe('parseProcNetUdp', () => {
  it('reads every socket of a real /proc/net/udp', () => {
    assert.deepEqual(parseProcNetUdp(fixture('lab/net/udp'), 'v4'), [
      { family: 'v4', localAddress: '0.0.0.0', localPort: 60777, uid: 0, inode: 36184 },
      { family: 'v4', localAddress: '0.0.0.0', localPort: 60779, uid: 1000, inode: 36938 },
      { family: 'v4', localAddress: '0.0.0.0', localPort: 60780, uid: 1000, inode: 36952 },
      { family: 'v4', localAddress: '0.0.0.0', localPort: 60781, uid: 0, inode: 36957 },
      { family: 'v4', localAddress: '0.0.0.0', localPort: 60782, uid: 0, inode: 36201 },
      { family: 'v4', localAddress: '127.0.0.1', localPort: 53000, uid: 0, inode: 36215 },
    ]);
  });

  it('reads every socket of a real /proc/net/udp6', () => {
    assert.deepEqual(parseProcNetUdp(fixture('lab/net/udp6'), 'v6'), [
      { family: 'v6', localAddress: '2001:db8::1', localPort: 60778, uid: 1000, inode: 36191 },
      { family: 'v6', localAddress: '::1', localPort: 60783, uid: 0, inode: 36213 },
      { family: 'v6', localAddress: '::ffff:192.0.2.1', localPort: 60784, uid: 0, inode: 36214 },
      { family: 'v6', localAddress: '::', localPort: 5353, uid: 0, inode: 36216 },
    ]);
  });

  it('reads a table with no sockets as empty', () => {
    assert.deepEqual(parseProcNetUdp(`${V4_HEADER}\n`, 'v4'), []);
    assert.deepEqual(parseProcNetUdp(V6_HEADER, 'v6'), []);
  });

  const addresses: [string, 'v4' | 'v6', string, string, number][] = [
    ['loopback', 'v4', '0100007F:EA61', '127.0.0.1', 60001],
    ['TEST-NET address', 'v4', '010200C0:0016', '192.0.2.1', 22],
    ['broadcast', 'v4', 'FFFFFFFF:FFFF', '255.255.255.255', 65535],
    ['lower-case hex', 'v4', '0a00000a:0001', '10.0.0.10', 1],
    ['v6 any', 'v6', '00000000000000000000000000000000:0000', '::', 0],
    ['v6 loopback', 'v6', '00000000000000000000000001000000:EA61', '::1', 60001],
    ['v6 documentation', 'v6', 'B80D0120000000000000000001000000:EA61', '2001:db8::1', 60001],
    ['v6 v4-mapped', 'v6', '0000000000000000FFFF0000010200C0:EA61', '::ffff:192.0.2.1', 60001],
    ['v6 link-local', 'v6', '000080FE00000000FF020000341200FE:EA61', 'fe80::2ff:fe00:1234', 60001],
    ['v6 no zero run', 'v6', 'B80D0120020001000400030006000500:0001', '2001:db8:1:2:3:4:5:6', 1],
    ['v6 single zero group kept', 'v6', 'B80D0120010000000200000004000300:0001', '2001:db8:0:1:0:2:3:4', 1],
    ['v6 longest run compressed', 'v6', 'B80D0120000000000000010000000000:0001', '2001:db8:0:0:1::', 1],
    ['v6 first of equal runs', 'v6', 'B80D0120000000000000010002000000:0001', '2001:db8::1:0:0:2', 1],
  ];
  for (const [name, family, local, address, port] of addresses) {
    it(`decodes ${name}: ${local} → ${address} port ${port}`, () => {
      const header = family === 'v4' ? V4_HEADER : V6_HEADER;
      const [socket] = parseProcNetUdp(`${header}\n${line(local, 1000, 77)}\n`, family);
      assert.deepEqual(socket, { family, localAddress: address, localPort: port, uid: 1000, inode: 77 });
    });
  }

  it('names the default source by family', () => {
    assert.throws(() => parseProcNetUdp('garbage\n', 'v6'), /in \/proc\/net\/udp6 \(line 1\)/);
    assert.throws(() => parseProcNetUdp('garbage\n', 'v4'), /in \/proc\/net\/udp \(line 1\)/);
  });

  const headers: [string, string][] = [
    ['a renamed first column', V4_HEADER.replace('sl', 'id')],
    ['no uid column', V4_HEADER.replace(' uid ', ' owner ')],
    ['no inode column', V4_HEADER.replace(' inode ', ' ino ')],
    ['an empty file', ''],
  ];
  for (const [name, header] of headers) {
    it(`refuses a header with ${name}`, () => {
      assert.throws(() => parseProcNetUdp(`${header}\n${line('0100007F:EA61')}\n`, 'v4'), {
        name: 'ProcError',
        message: /^Unexpected header in \/proc\/net\/udp \(line 1\)/,
      });
    });
  }

  const broken: [string, string, 'v4' | 'v6', number, string][] = [
    ['a line cut short', 'edited/udp-truncated-line', 'v4', 3, '4611: 00000000:ED6B'],
    ['a missing header', 'edited/udp-no-header', 'v4', 1, '4609: 00000000:ED69'],
    ['a 3-digit port', 'edited/udp6-short-port', 'v6', 2, 'B80D0120000000000000000001000000:ED6 '],
  ];
  for (const [name, file, family, lineNumber, excerpt] of broken) {
    it(`throws a ProcError naming file, line and text for ${name}`, () => {
      const source = `/fixtures/${file}`;
      assert.throws(
        () => parseProcNetUdp(fixture(file), family, source),
        (error: unknown) => {
          assert.ok(error instanceof ProcError);
          assert.equal(error.code, 'EPROC');
          assert.equal(error.context.file, source);
          assert.equal(error.context.line, lineNumber);
          assert.ok(String(error.context.text).includes(excerpt), String(error.context.text));
          assert.ok(error.message.includes(source), error.message);
          assert.ok(error.message.includes(`line ${lineNumber}`), error.message);
          return true;
        },
      );
    });
  }

  const badLines: [string, string][] = [
    ['a v6 address in the v4 table', line('00000000000000000000000001000000:EA61')],
    ['a non-numeric inode', line('0100007F:EA61').replace(' 4242 ', ' 42x2 ')],
    ['a blank line between sockets', ''],
    ['a missing slot colon', line('0100007F:EA61').replace('1:', '1')],
  ];
  for (const [name, bad] of badLines) {
    it(`refuses ${name}`, () => {
      const text = `${V4_HEADER}\n${line('0100007F:EA61')}\n${bad}\n${line('0100007F:EA62')}\n`;
      assert.throws(() => parseProcNetUdp(text, 'v4'), {
        name: 'ProcError',
        message: /Malformed line 3 of \/proc\/net\/udp/,
      });
    });
  }
});
