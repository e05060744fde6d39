import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { portOutcome } from '../../../src/daemon/outcome.ts';
import type { SyncReport } from '../../../src/engine.ts';
import { anySpec, rule, session } from '../../support/builders.ts';

/** A report with one session on `port` and the given plan parts. */
function reportWith(
  parts: Partial<SyncReport['plan']> & { refused?: SyncReport['refused']; active?: boolean; held?: boolean },
): SyncReport {
  const held = parts.held ?? true;
  return {
    firewall: { installed: true, active: parts.active ?? true, ipv6: true, detail: [] },
    dryRun: false,
    sessions: held ? [{ session: session({ port: 60001 }), specs: [anySpec(60001)] }] : [],
    refused: parts.refused ?? [],
    warnings: [],
    plan: { allow: parts.allow ?? [], revoke: [], keep: parts.keep ?? [], deferred: parts.deferred ?? [] },
    applied: [],
  };
}

describe('portOutcome', () => {
  it('is open when the rule was added or kept', () => {
    assert.deepEqual(portOutcome(reportWith({ allow: [anySpec(60001)] }), 60001), {
      ok: true,
      op: 'open',
      port: 60001,
      state: 'open',
    });
    assert.deepEqual(portOutcome(reportWith({ keep: [anySpec(60001)] }), 60001), {
      ok: true,
      op: 'open',
      port: 60001,
      state: 'open',
    });
  });
  it('is covered when an admin rule already allows it, refused when an admin rule has its match', () => {
    const admin = rule({ ports: [{ first: 60000, last: 61000 }] });
    assert.equal(
      portOutcome(reportWith({ deferred: [{ spec: anySpec(60001), rule: admin, kind: 'covered' }] }), 60001)
        .ok,
      true,
    );
    const deny = rule({ action: 'deny', ports: [{ first: 60001, last: 60001 }], raw: 'deny udp 60001' });
    const answer = portOutcome(
      reportWith({ deferred: [{ spec: anySpec(60001), rule: deny, kind: 'conflict' }] }),
      60001,
    );
    assert.deepEqual(answer, {
      ok: false,
      port: 60001,
      error: 'an admin rule decides port 60001: deny udp 60001',
    });
  });
  it('passes the refusal reason, or says nobody genuine holds the port', () => {
    const refused = [
      {
        ...session({ port: 60001 }),
        reason: 'executable /home/eve/mosh-server is owned by uid 1001, not root',
      },
    ];
    assert.match(
      JSON.stringify(portOutcome(reportWith({ refused, held: false }), 60001)),
      /owned by uid 1001/,
    );
    assert.match(
      JSON.stringify(portOutcome(reportWith({ held: false }), 60001)),
      /no genuine mosh-server holds port 60001/,
    );
  });
  it('is unfiltered when the firewall is inactive', () => {
    assert.deepEqual(portOutcome(reportWith({ active: false }), 60001), {
      ok: true,
      op: 'open',
      port: 60001,
      state: 'unfiltered',
    });
  });
});
