import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  parseBootTime,
  parseEnviron,
  parseMaps,
  parseSshConnection,
  parseStat,
  parseStatus,
} from '../../../src/discovery/process.ts';
import { ProcError } from '../../../src/errors.ts';
import { fixture, pidOf } from './lab.ts';

describe('parseStat', () => {
  it('reads pid, comm and start time of a real mosh-server', () => {
    assert.deepEqual(parseStat(fixture('lab/pid/mosh-v4/stat')), {
      pid: pidOf('mosh-v4'),
      comm: 'mosh-server',
      startTimeTicks: 119411,
    });
  });

  it('splits at the last ")" when comm holds ") " and "(" (real capture)', () => {
    assert.deepEqual(parseStat(fixture('lab/pid/odd-comm/stat')), {
      pid: pidOf('odd-comm'),
      comm: 'x) S 1 (y z',
      startTimeTicks: 119417,
    });
  });

  const malformed: [string, string][] = [
    ['a truncated line (edited capture)', fixture('edited/stat-truncated')],
    ['no comm', '123 S 1 2 3\n'],
    ['a non-numeric pid', 'abc (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22\n'],
    ['a non-numeric start time', '1 (x) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 soon 20 21\n'],
    ['empty text', ''],
  ];
  for (const [name, text] of malformed) {
    it(`throws a ProcError naming the file for ${name}`, () => {
      assert.throws(() => parseStat(text, '/proc/7/stat'), {
        name: 'ProcError',
        message: /Malformed stat in \/proc\/7\/stat/,
      });
    });
  }
});

describe('parseStatus', () => {
  it('reads ids and tracer of a real root mosh-server with no supplementary groups', () => {
    assert.deepEqual(parseStatus(fixture('lab/pid/mosh-v4/status')), {
      realUid: 0,
      effectiveUid: 0,
      realGid: 0,
      effectiveGid: 0,
      groups: [],
      tracerPid: 0,
      parentPid: 1,
    });
  });

  it('reads a real process of uid 1000 and a real traced one', () => {
    assert.deepEqual(parseStatus(fixture('lab/pid/mosh-v6/status')), {
      realUid: 1000,
      effectiveUid: 1000,
      realGid: 1000,
      effectiveGid: 1000,
      groups: [1000],
      tracerPid: 0,
      parentPid: 1,
    });
    assert.notEqual(parseStatus(fixture('lab/pid/traced/status')).tracerPid, 0);
  });

  it('keeps real and effective ids apart and reads several groups', () => {
    const text =
      'Name:\tx\nPPid:\t42\nTracerPid:\t0\nUid:\t1000\t0\t0\t0\nGid:\t100\t50\t50\t50\nGroups:\t4 24 27 \n';
    assert.deepEqual(parseStatus(text), {
      realUid: 1000,
      effectiveUid: 0,
      realGid: 100,
      effectiveGid: 50,
      groups: [4, 24, 27],
      tracerPid: 0,
      parentPid: 42,
    });
  });

  const malformed: [string, string, RegExp][] = [
    ['no TracerPid line (edited capture)', fixture('edited/status-no-tracerpid'), /no TracerPid line/],
    ['a short Uid line', 'TracerPid:\t0\nUid:\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\n', /Uid line/],
    [
      'a non-numeric group',
      'TracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\twheel\n',
      /Groups line/,
    ],
  ];
  for (const [name, text, message] of malformed) {
    it(`throws a ProcError for ${name}`, () => {
      assert.throws(
        () => parseStatus(text, '/proc/9/status'),
        (error: unknown) => {
          assert.ok(error instanceof ProcError);
          assert.match(error.message, message);
          assert.equal(error.context.file, '/proc/9/status');
          return true;
        },
      );
    });
  }
});

describe('parseMaps', () => {
  it('reads every line of a real mosh-server maps', () => {
    const entries = parseMaps(fixture('lab/pid/mosh-v4/maps'));
    assert.equal(entries.length, fixture('lab/pid/mosh-v4/maps').trimEnd().split('\n').length);
    const executable = entries.filter((entry) => entry.perms.includes('x')).map((entry) => entry.pathname);
    assert.ok(executable.includes('/usr/bin/mosh-server'));
    assert.ok(executable.includes('/usr/lib/x86_64-linux-gnu/libc.so.6'));
    assert.ok(executable.includes('[vdso]'));
    const anonymous = entries.find((entry) => entry.pathname === '');
    assert.ok(anonymous, 'an anonymous mapping is listed with an empty pathname');
  });

  it('splits " (deleted)" off the pathname (real capture of a removed binary)', () => {
    const [first] = parseMaps(fixture('lab/pid/deleted/maps'));
    assert.equal(first?.pathname, '/opt/mosh/bin/mosh-server');
    assert.equal(first?.deleted, true);
  });

  it('reads all fields of one line, pathname with spaces kept', () => {
    const line =
      '00400000-0041f000 r-xp 0001f000 fe:00 260811                     /opt/my tools/mosh-server\n';
    assert.deepEqual(parseMaps(line), [
      {
        start: '00400000',
        end: '0041f000',
        perms: 'r-xp',
        offset: '0001f000',
        device: 'fe:00',
        inode: 260811,
        pathname: '/opt/my tools/mosh-server',
        deleted: false,
      },
    ]);
  });

  it('throws a ProcError naming the line for bad perms (edited capture)', () => {
    assert.throws(() => parseMaps(fixture('edited/maps-bad-perms'), '/proc/5/maps'), {
      name: 'ProcError',
      message: /Malformed mapping in line 3 of \/proc\/5\/maps: ".* r\?-p /,
    });
  });
});

describe('parseEnviron', () => {
  it('reads a real environment, NUL-separated', () => {
    const environment = parseEnviron(fixture('lab/pid/mosh-v4/environ'));
    assert.equal(environment.get('SSH_CONNECTION'), '203.0.113.7 51234 192.0.2.1 22');
    assert.equal(environment.get('LANG'), 'C.UTF-8');
  });

  it('keeps "=" inside values and the first of duplicate names', () => {
    const environment = parseEnviron('A=1=2\0B=\0A=3\0');
    assert.deepEqual(
      [...environment],
      [
        ['A', '1=2'],
        ['B', ''],
      ],
    );
  });

  it('reads an empty environment', () => {
    assert.equal(parseEnviron('').size, 0);
  });

  it('throws a ProcError for an entry with an empty name', () => {
    assert.throws(() => parseEnviron('=1\0', '/proc/3/environ'), { name: 'ProcError', message: /line 1 of/ });
  });

  it('throws a ProcError for an entry without "="', () => {
    assert.throws(() => parseEnviron('A=1\0garbage\0', '/proc/3/environ'), {
      name: 'ProcError',
      message: /line 2 of \/proc\/3\/environ: "garbage"/,
    });
  });
});

describe('parseSshConnection', () => {
  const cases: [string, string | undefined][] = [
    ['203.0.113.7 51234 192.0.2.1 22', '203.0.113.7'],
    ['2001:db8::99 40000 2001:db8::1 22', '2001:db8::99'],
    ['2001:DB8:0:0:0:0:0:99 40000 2001:db8::1 22', '2001:db8::99'],
    ['::ffff:203.0.113.7 40000 ::ffff:192.0.2.1 22', '::ffff:203.0.113.7'],
    ['fe80::1%eth0 40000 fe80::2%eth0 22', 'fe80::1'],
    ['  203.0.113.7   51234 192.0.2.1 22\n', '203.0.113.7'],
    ['', undefined],
    ['203.0.113.7', undefined],
    ['203.0.113.7 51234 192.0.2.1', undefined],
    ['203.0.113.7 51234 192.0.2.1 22 extra', undefined],
    ['example.com 51234 192.0.2.1 22', undefined],
    ['203.0.113.256 51234 192.0.2.1 22', undefined],
    ['203.0.113.07 51234 192.0.2.1 22', undefined],
    ['203.0.113 51234 192.0.2.1 22', undefined],
    ['2001:db8:::1 51234 192.0.2.1 22', undefined],
    ['2001:db8::1::2 51234 192.0.2.1 22', undefined],
    ['1:2:3:4:5:6:7:8:9 51234 192.0.2.1 22', undefined],
    ['12345::1 51234 192.0.2.1 22', undefined],
    ['fe80::1%eth0;rm 40000 fe80::2 22', undefined],
    ['203.0.113.7 0 192.0.2.1 22', undefined],
    ['203.0.113.7 65536 192.0.2.1 22', undefined],
    ['203.0.113.7 51234 nonsense 22', undefined],
    ['203.0.113.7 -1 192.0.2.1 22', undefined],
  ];
  for (const [value, expected] of cases) {
    it(`${JSON.stringify(value)} → ${expected ?? 'undefined'}`, () => {
      assert.equal(parseSshConnection(value), expected);
    });
  }
});

describe('parseBootTime', () => {
  it('reads btime of a real /proc/stat', () => {
    assert.equal(parseBootTime(fixture('lab/stat')), 1795510470);
  });

  it('throws a ProcError without a btime line', () => {
    assert.throws(() => parseBootTime('cpu  1 2 3\nintr 0\n'), {
      name: 'ProcError',
      message: /boot time in \/proc\/stat: "\(no btime line\)"/,
    });
  });

  it('throws a ProcError for a non-numeric btime', () => {
    assert.throws(() => parseBootTime('btime soon\n'), { name: 'ProcError', message: /"btime soon"/ });
  });
});
