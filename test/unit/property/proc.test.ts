import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import {
  parseEnviron,
  parseMaps,
  parseSshConnection,
  parseStat,
  parseStatus,
} from '../../../src/discovery/process.ts';
import { parseProcNetUdp } from '../../../src/discovery/udp.ts';
import type { Family, UdpSocket } from '../../../src/model.ts';
import { formatIPv4, formatIPv6 } from '../../../src/net.ts';
import { damaged, fixture, holds, parsesOrRefuses, RUNS, reportCases } from './_arbitraries.ts';

/** An address word as the kernel prints it: a host-order (little-endian) 32-bit integer in hex. */
function kernelWords(bytes: number[]): string {
  let hex = '';
  for (let word = 0; word < bytes.length; word += 4) {
    for (let byte = 3; byte >= 0; byte--) hex += (bytes[word + byte] ?? 0).toString(16).padStart(2, '0');
  }
  return hex.toUpperCase();
}

/** A /proc/net/udp{,6} text listing these sockets, as the kernel formats it. */
function procNetUdp(
  family: Family,
  sockets: { bytes: number[]; port: number; uid: number; inode: number }[],
) {
  const header =
    '   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops';
  const zero = kernelWords(new Array(family === 'v4' ? 4 : 16).fill(0));
  const lines = sockets.map(
    (socket, slot) =>
      ` ${slot}: ${kernelWords(socket.bytes)}:${socket.port.toString(16).toUpperCase().padStart(4, '0')} ${zero}:0000 07 00000000:00000000 00:00000000 00000000 ${String(socket.uid).padStart(5)}        0 ${socket.inode} 2 0000000000000000 0`,
  );
  return `${[header, ...lines].join('\n')}\n`;
}

const socketOf = (family: Family) =>
  fc.record({
    bytes: fc.array(fc.integer({ min: 0, max: 255 }), {
      minLength: family === 'v4' ? 4 : 16,
      maxLength: family === 'v4' ? 4 : 16,
    }),
    port: fc.integer({ min: 0, max: 65535 }),
    uid: fc.nat({ max: 2 ** 32 - 2 }),
    inode: fc.nat(),
  });

for (const family of ['v4', 'v6'] as const) {
  test(`/proc/net/udp (${family}): what the kernel prints is read back exactly`, () => {
    holds(
      fc.property(fc.array(socketOf(family), { maxLength: 20 }), (sockets) => {
        const parsed = parseProcNetUdp(procNetUdp(family, sockets), family);
        const expected: UdpSocket[] = sockets.map((socket) => ({
          family,
          localAddress: family === 'v4' ? formatIPv4(socket.bytes) : formatIPv6(socket.bytes),
          localPort: socket.port,
          uid: socket.uid,
          inode: socket.inode,
        }));
        assert.deepEqual(parsed, expected);
      }),
      { numRuns: RUNS },
    );
  });

  test(`/proc/net/udp (${family}): damaged text parses or is refused naming the file, never a crash`, () => {
    const text = fixture(`proc/lab/net/${family === 'v4' ? 'udp' : 'udp6'}`);
    holds(
      fc.property(damaged(text), (input) => {
        const sockets = parsesOrRefuses(
          () => parseProcNetUdp(input, family, '/proc/net/test-udp'),
          '/proc/net/test-udp',
        );
        for (const socket of sockets ?? []) {
          assert.ok(socket.localPort >= 0 && socket.localPort <= 65535, `port ${socket.localPort}`);
          assert.ok(Number.isSafeInteger(socket.inode) && Number.isSafeInteger(socket.uid));
        }
      }),
      { numRuns: RUNS },
    );
  });
}

test('/proc/PID/stat: any comm (spaces, parentheses, newlines) and the start time are read back', () => {
  holds(
    fc.property(
      fc.integer({ min: 1, max: 4194304 }),
      fc.string({ unit: 'binary', maxLength: 15 }),
      fc.nat(),
      (pid, comm, start) => {
        const rest = [
          'S',
          '1',
          '2',
          '3',
          '0',
          '-1',
          '4194368',
          ...new Array(12).fill('0'),
          String(start),
          '1 2',
        ];
        const parsed = parseStat(`${pid} (${comm}) ${rest.join(' ')}\n`);
        assert.deepEqual(parsed, { pid, comm, startTimeTicks: start });
      },
    ),
    { numRuns: RUNS },
  );
});

test('/proc/PID/{stat,status,maps,environ}: damaged text parses or is refused naming the file', () => {
  const pid = 'proc/lab/pid/mosh-v4';
  const cases: [string, (text: string) => unknown][] = [
    ['stat', (text) => parseStat(text, '/proc/4242/stat')],
    ['status', (text) => parseStatus(text, '/proc/4242/status')],
    ['maps', (text) => parseMaps(text, '/proc/4242/maps')],
    ['environ', (text) => parseEnviron(text, '/proc/4242/environ')],
  ];
  for (const [file, parse] of cases) {
    holds(
      fc.property(damaged(fixture(`${pid}/${file}`)), (input) => {
        parsesOrRefuses(() => parse(input), `/proc/4242/${file}`);
      }),
      { numRuns: RUNS },
    );
  }
});

test('/proc/PID/status: a uid, gid or tracer that is not a plain number is refused, never read as 0', () => {
  const text = fixture('proc/lab/pid/mosh-v4/status');
  holds(
    fc.property(
      fc.constantFrom('Uid', 'Gid', 'TracerPid'),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 10 }).filter((value) => !/^[\d\s]*$/.test(value)),
      (key, junk) => {
        const changed = text.replace(new RegExp(`^${key}:\\t(\\S+)`, 'm'), `${key}:\t${junk}`);
        assert.throws(() => parseStatus(changed, '/proc/1/status'), /status/);
      },
    ),
    { numRuns: RUNS },
  );
});

test('/proc/PID/environ: the first of each name wins, values kept byte for byte', () => {
  const name = fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/);
  const value = fc.string({ unit: 'binary', maxLength: 20 }).map((text) => text.replaceAll('\0', ''));
  holds(
    fc.property(fc.array(fc.tuple(name, value), { maxLength: 12 }), (entries) => {
      const text = entries.map(([key, val]) => `${key}=${val}\0`).join('');
      const expected = new Map<string, string>();
      for (const [key, val] of entries) if (!expected.has(key)) expected.set(key, val);
      assert.deepEqual(parseEnviron(text), expected);
    }),
    { numRuns: RUNS },
  );
});

test('SSH_CONNECTION: any value gives a canonical address or nothing, never throws', () => {
  holds(
    fc.property(
      fc.oneof(
        fc.string({ unit: 'binary', maxLength: 80 }),
        fc
          .tuple(fc.ipV4(), fc.integer({ min: 0, max: 70000 }), fc.oneof(fc.ipV4(), fc.ipV6()), fc.nat(70000))
          .map((parts) => parts.join(' ')),
        fc.tuple(fc.ipV6(), fc.nat(70000)).map(([address, port]) => `${address} ${port} ::1 22`),
      ),
      (value) => {
        const client = parseSshConnection(value);
        if (client !== undefined) assert.match(client, /^[0-9a-f.:]+$/);
      },
    ),
    { numRuns: RUNS },
  );
});

reportCases('proc');
