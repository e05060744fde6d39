import { ProcError } from '../errors.ts';

/** What /etc/group says: each group's gid and its listed members (primary members are not listed). */
export interface GroupTable {
  gidByName: Map<string, number>;
  membersByName: Map<string, string[]>;
}

/** Non-comment, non-blank lines of a colon-separated file, split into fields; a bad line throws. */
function records(text: string, source: string, fieldCount: number): string[][] {
  const result: string[][] = [];
  for (const [index, line] of text.split('\n').entries()) {
    // "+" / "-" lines are NIS compat entries: names resolved elsewhere, nothing to read here.
    if (line.trim() === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const fields = line.split(':');
    const id = fields[2] ?? '';
    if (fields.length !== fieldCount || fields[0] === '' || !/^\d+$/.test(id)) {
      throw new ProcError(`Malformed line ${index + 1} of ${source}: ${JSON.stringify(line)}`, {
        file: source,
        line: index + 1,
        text: line,
      });
    }
    result.push(fields);
  }
  return result;
}

/** uid → user name from /etc/passwd text; the first entry for a uid wins, as getpwuid(3) does. */
export function parsePasswd(text: string, source = '/etc/passwd'): Map<number, string> {
  const names = new Map<number, string>();
  for (const fields of records(text, source, 7)) {
    const uid = Number(fields[2]);
    if (!names.has(uid)) names.set(uid, fields[0] ?? '');
  }
  return names;
}

/** group name → gid and group name → member user names from /etc/group text (first entry wins). */
export function parseGroup(text: string, source = '/etc/group'): GroupTable {
  const table: GroupTable = { gidByName: new Map(), membersByName: new Map() };
  for (const fields of records(text, source, 4)) {
    const [name = '', , gid = '', members = ''] = fields;
    if (table.gidByName.has(name)) continue;
    table.gidByName.set(name, Number(gid));
    table.membersByName.set(name, members === '' ? [] : members.split(','));
  }
  return table;
}
