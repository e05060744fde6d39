// What the ufw-*.test.ts files share: the lab's lifecycle in a describe, moshwall's JSON output as types,
// and the UFW oracles that do not go through moshwall (user.rules read directly, rule blocks compared
// byte for byte).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before } from 'node:test';
import type { MoshSession } from '../../src/model.ts';
import {
  createLab,
  type Lab,
  type LabRunOptions,
  type MoshServer,
  type Result,
  type UfwTuple,
} from './lab.ts';

export type Family = 'v4' | 'v6';

/**
 * The one lab lifecycle of the e2e tests. Registers, on the enclosing describe, a before() that makes the
 * lab (`create`, createLab() by default) and an after() that runs `cleanup` (the file's own: stopping
 * what it started, while the lab still exists) and then destroys the lab, also after a failed create or
 * cleanup. Returns the lab, failing the test if it was not made. Register it before the file's own
 * before() hooks (they run in order, so the lab exists in theirs).
 */
export function useLab(
  create: () => Promise<Lab> = () => createLab(),
  cleanup?: () => Promise<void>,
): () => Lab {
  let lab: Lab | undefined;
  before(async () => {
    lab = await create();
  });
  after(async () => {
    try {
      if (lab !== undefined) await cleanup?.();
    } finally {
      await lab?.destroy();
    }
  });
  return () => {
    assert.ok(lab, 'the lab was not made in before()');
    return lab;
  };
}

/** A session an earlier test started, failing this test if that one did not get to start it. */
export function started(server: MoshServer | undefined, what: string): MoshServer {
  assert.ok(server, `the ${what} session was not started (an earlier test failed)`);
  return server;
}

/**
 * Registers a before() (after useLab's) in which the admin adds `rules` (each the argv after `ufw`) to
 * the lab. Returns every rule block not ours as it was right after (adminBlocks: 22/tcp and each rule, for
 * v4 and v6), and the check that they are still exactly so.
 */
export function useAdminRules(
  theLab: () => Lab,
  rules: readonly string[][],
): { blocks(): string[]; assertUntouched(when: string): void } {
  let admin: string[] = [];
  before(async () => {
    for (const rule of rules) {
      const result = await theLab().ufw(rule);
      assert.equal(result.exitCode, 0, `ufw ${rule.join(' ')}: ${result.stderr}`);
    }
    admin = adminBlocks(theLab());
    assert.equal(admin.length, 2 * (1 + rules.length), admin.join('\n'));
  });
  return {
    blocks: () => admin,
    assertUntouched: (when) => assert.deepEqual(adminBlocks(theLab()), admin, `admin rules changed ${when}`),
  };
}

/** A rule spec as moshwall prints it. */
export interface SpecJson {
  port: number;
  family: Family;
  source: string;
}

/** The fields of a session (or refused holder) the tests read from moshwall's JSON. */
export type SessionJson = Pick<
  MoshSession,
  'pid' | 'uid' | 'user' | 'port' | 'family' | 'localAddress' | 'exe'
>;

export interface RefusedJson extends SessionJson {
  reason: string;
}

/** `moshwall sync --json` (README "JSON output"). */
export interface SyncJson {
  dryRun: boolean;
  firewall: { active: boolean; ipv6: boolean };
  opened: SpecJson[];
  closed: SpecJson[];
  kept: SpecJson[];
  deferred: Array<SpecJson & { kind: 'covered' | 'conflict'; rule: string }>;
  sessions: SessionJson[];
  refused: RefusedJson[];
  warnings: string[];
}

/** `moshwall status --json`. */
export interface StatusJson {
  backend: string;
  firewall: { installed: boolean; active: boolean; ipv6: boolean; detail: string[] };
  sessions: Array<SessionJson & { ageSeconds: number; rule: string }>;
  refused: RefusedJson[];
  rules: Array<SpecJson & { state: 'live' | 'stale' }>;
  foreignInRange: Array<{ raw: string; comment: string }>;
  warnings: string[];
}

/** The parsed stdout of a moshwall run that must have exited 0 without a word on stderr. */
export function parseOk<T>(result: Result, what: string): T {
  assert.equal(result.exitCode, 0, `${what} exited ${result.exitCode}: ${result.stderr}${result.stdout}`);
  assert.equal(result.stderr, '', `${what} wrote to stderr`);
  return JSON.parse(result.stdout) as T;
}

/** `moshwall sync --json [--dry-run]` in the lab; asserts exit 0 and an empty stderr. */
export async function syncJson(
  lab: Lab,
  opts: LabRunOptions & { config?: string; dryRun?: boolean } = {},
): Promise<SyncJson> {
  const { dryRun, ...rest } = opts;
  const args = ['sync', '--json', ...(dryRun === true ? ['--dry-run'] : [])];
  return parseOk<SyncJson>(await lab.moshwall(args, rest), args.join(' '));
}

/** `moshwall status --json` in the lab; asserts exit 0 and an empty stderr. */
export async function statusJson(lab: Lab): Promise<StatusJson> {
  return parseOk<StatusJson>(await lab.moshwall(['status', '--json']), 'status --json');
}

/** Specs as sorted "port/family from source" keys, for exact comparisons. */
export function specKeys(specs: readonly SpecJson[]): string[] {
  return specs.map((spec) => `${spec.port}/${spec.family} from ${spec.source}`).sort();
}

/** The source of a rule from anywhere, as ufw writes it. */
export function anywhere(family: Family): string {
  return family === 'v4' ? '0.0.0.0/0' : '::/0';
}

/** The spec of a session's rule from anywhere, as moshwall reports it. */
export function spec(port: number, family: Family): SpecJson {
  return { port, family, source: anywhere(family) };
}

/** The user.rules tuple of one of our rules from anywhere, exactly as ufw writes it. */
export function ourTuple(port: number, family: Family): UfwTuple {
  const any = anywhere(family);
  return { family, tuple: `allow udp ${port} ${any} any ${any} in`, comment: 'moshwall' };
}

/** Tuples in a stable order (family, then text), for deepEqual. */
export function sortTuples(tuples: readonly UfwTuple[]): UfwTuple[] {
  return [...tuples].sort(
    (a, b) => a.family.localeCompare(b.family) || a.tuple.localeCompare(b.tuple, 'en', { numeric: true }),
  );
}

/** The shape of every rule of ours: allow udp PORT, to any address of the family, from a source, in. */
const OUR_SHAPE = /^allow udp \d+ (0\.0\.0\.0\/0|::\/0) any \S+ in$/;

/** True for a rule of ours: our comment and our shape (a tcp rule an admin tagged "moshwall" is not). */
export function isOurs(tuple: UfwTuple): boolean {
  return tuple.comment === 'moshwall' && OUR_SHAPE.test(tuple.tuple);
}

/** The rules of ours, sorted. */
export function ourTuples(tuples: readonly UfwTuple[]): UfwTuple[] {
  return sortTuples(tuples.filter(isOurs));
}

/** Expected tuples of ours for these [port, family] pairs, sorted like ourTuples. */
export function expectedOurs(pairs: ReadonlyArray<readonly [number, Family]>): UfwTuple[] {
  return sortTuples(pairs.map(([port, family]) => ourTuple(port, family)));
}

/** The destination port of a ufw tuple ("allow udp 60001 0.0.0.0/0 any 0.0.0.0/0 in" → "60001"). */
export function tuplePort(tuple: UfwTuple): string {
  return tuple.tuple.split(' ')[2] ?? '';
}

/** The raw bytes of user.rules and user6.rules as the server host sees them. */
export function rulesFiles(lab: Lab): string {
  return ['user.rules', 'user6.rules']
    .map((file) => readFileSync(lab.serverPath(`/etc/ufw/${file}`), 'utf8'))
    .join('\n=====\n');
}

/** The "### tuple ###" line of a rule of ours: allow udp PORT to any address from SOURCE, our comment. */
const OUR_TUPLE_LINE = new RegExp(
  `^### tuple ### allow udp \\d+ (0\\.0\\.0\\.0/0|::/0) any \\S+ in comment=${Buffer.from('moshwall').toString('hex')}$`,
);

/**
 * Every rule block (the "### tuple ###" line and the iptables lines under it) that is not a rule of
 * ours, from user.rules then user6.rules, byte for byte: equal lists mean no admin rule was deleted,
 * adopted (its comment would change) or rewritten. A rule tagged "moshwall" without our shape (e.g. tcp)
 * counts as the admin's.
 */
export function adminBlocks(lab: Lab): string[] {
  return ['user.rules', 'user6.rules'].flatMap((file) => {
    const text = readFileSync(lab.serverPath(`/etc/ufw/${file}`), 'utf8');
    return text
      .split('\n\n')
      .map((block) => block.trim())
      .filter(
        (block) => block.startsWith('### tuple ### ') && !OUR_TUPLE_LINE.test(block.split('\n')[0] ?? ''),
      )
      .map((block) => `${file}: ${block}`);
  });
}
