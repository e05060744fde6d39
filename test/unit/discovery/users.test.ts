import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseGroup, parsePasswd } from '../../../src/discovery/users.ts';
import { ProcError } from '../../../src/errors.ts';
import { fixture } from './lab.ts';

describe('parsePasswd', () => {
  it('maps uid to name in a real /etc/passwd', () => {
    const names = parsePasswd(fixture('lab/etc/passwd'));
    assert.equal(names.get(0), 'root');
    assert.equal(names.get(1000), 'cloudsdk');
    assert.equal(names.get(65534), 'nobody');
    assert.equal(names.get(4242), undefined);
  });

  it('keeps the first name of a uid, skips comments, blank and NIS compat lines', () => {
    const text = '# users\nroot:x:0:0:root:/root:/bin/sh\n\ntoor:x:0:0::/:/bin/sh\n+::::::\n-eve::::::\n';
    assert.deepEqual([...parsePasswd(text)], [[0, 'root']]);
  });

  const malformed: [string, string][] = [
    ['too few fields', 'root:x:0:0:root:/root:/bin/sh\neve:x:1001\n'],
    ['a non-numeric uid', 'root:x:0:0:root:/root:/bin/sh\neve:x:one:1001::/home/eve:/bin/sh\n'],
    ['an empty name', 'root:x:0:0:root:/root:/bin/sh\n:x:1001:1001::/home/eve:/bin/sh\n'],
  ];
  for (const [name, text] of malformed) {
    it(`throws a ProcError naming line 2 for ${name}`, () => {
      assert.throws(
        () => parsePasswd(text),
        (error: unknown) => {
          assert.ok(error instanceof ProcError);
          assert.equal(error.context.file, '/etc/passwd');
          assert.equal(error.context.line, 2);
          return true;
        },
      );
    });
  }
});

describe('parseGroup', () => {
  it('maps names to gids and listed members in a real /etc/group', () => {
    const groups = parseGroup(fixture('lab/etc/group'));
    assert.equal(groups.gidByName.get('sudo'), 27);
    assert.equal(groups.gidByName.get('cloudsdk'), 1000);
    assert.deepEqual(groups.membersByName.get('ssl-cert'), ['postgres']);
    assert.deepEqual(groups.membersByName.get('sudo'), []);
  });

  it('splits several members and keeps the first entry of a name', () => {
    const groups = parseGroup('mosh:x:2000:alice,bob\nmosh:x:2001:eve\n');
    assert.equal(groups.gidByName.get('mosh'), 2000);
    assert.deepEqual(groups.membersByName.get('mosh'), ['alice', 'bob']);
  });

  it('throws a ProcError naming the line of a malformed entry', () => {
    assert.throws(() => parseGroup('mosh:x:2000:\nbroken:x\n', '/srv/group'), {
      name: 'ProcError',
      message: /Malformed line 2 of \/srv\/group: "broken:x"/,
    });
  });
});
