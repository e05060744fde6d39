import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { parseConfig } from '../../../src/config.ts';
import { createDaemonMetrics, refusalReason, requestOutcome } from '../../../src/daemon/metrics.ts';
import type { SyncReport } from '../../../src/engine.ts';
import { isLoopback, parseListen } from '../../../src/metrics/listen.ts';
import { routeRequest, startMetricsServer } from '../../../src/metrics/server.ts';
import { anySpec, session } from '../../support/builders.ts';

/** Sends raw bytes to host:port and resolves with everything the server wrote before closing. */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (chunk) => {
      text += chunk.toString();
    });
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
    socket.write(bytes);
  });
}

/** A reconcile report with the given sessions' rules opened now. */
function report(ports: number[], refused: SyncReport['refused'] = []): SyncReport {
  const specs = ports.map((port) => anySpec(port));
  return {
    firewall: { installed: true, active: true, detail: [] },
    dryRun: false,
    sessions: ports.map((port) => ({
      session: session({ port }),
      specs: [],
    })) as unknown as SyncReport['sessions'],
    refused,
    warnings: [],
    plan: { allow: specs, revoke: [], keep: [], deferred: [] },
    applied: [{ kind: 'allow', specs, argv: ['ufw'], output: '' }],
  } as unknown as SyncReport;
}

describe('metrics_listen', () => {
  it('takes a port, host:port or [v6]:port; refuses non-loopback unless allowed', () => {
    assert.deepEqual(parseListen('9654', false), { host: '127.0.0.1', port: 9654 });
    assert.deepEqual(parseListen('127.0.0.2:9000', false), { host: '127.0.0.2', port: 9000 });
    assert.deepEqual(parseListen('[::1]:9654', false), { host: '::1', port: 9654 });
    assert.match(String(parseListen('0.0.0.0:9654', false)), /not a loopback address/);
    assert.deepEqual(parseListen('0.0.0.0:9654', true), { host: '0.0.0.0', port: 9654 });
    assert.match(String(parseListen('localhost:9654', false)), /IP address literal/);
    assert.match(String(parseListen('127.0.0.1:0', false)), /port from 1/);
    assert.match(String(parseListen('127.0.0.1:99999', false)), /port from 1/);
    assert.equal(isLoopback('::ffff:127.0.0.1'), true);
    assert.equal(isLoopback('10.0.0.1'), false);
  });

  it('is off by default, parsed from the config, and a public address needs metrics_allow_public', () => {
    assert.equal(parseConfig('', 'x.toml').metricsListen, undefined);
    assert.deepEqual(parseConfig('metrics_listen = "127.0.0.1:9654"', 'x.toml').metricsListen, {
      host: '127.0.0.1',
      port: 9654,
    });
    assert.throws(
      () => parseConfig('backend = "ufw"\nmetrics_listen = "192.0.2.1:9654"', 'x.toml'),
      /x\.toml:2: metrics_listen: "192\.0\.2\.1" is not a loopback address/,
    );
    const open = parseConfig('metrics_listen = "192.0.2.1:9654"\nmetrics_allow_public = true', 'x.toml');
    assert.deepEqual(open.metricsListen, { host: '192.0.2.1', port: 9654 });
    assert.throws(() => parseConfig('metrics_listen = 9654', 'x.toml'), /expected a string/);
    assert.throws(() => parseConfig('metrics_user_label = "yes"', 'x.toml'), /expected true or false/);
  });
});

describe('metrics endpoint', () => {
  it('routes GET and HEAD /metrics only', () => {
    assert.deepEqual(routeRequest('GET', '/metrics'), { status: 200 });
    assert.deepEqual(routeRequest('GET', '/metrics?x=1'), { status: 200 });
    assert.deepEqual(routeRequest('HEAD', '/metrics'), { status: 200 });
    assert.deepEqual(routeRequest('POST', '/metrics'), { status: 405, allow: 'GET, HEAD' });
    assert.deepEqual(routeRequest('GET', '/'), { status: 404 });
    assert.deepEqual(routeRequest('GET', '/metrics/../x'), { status: 404 });
  });

  it('serves the text, answers 404/405/400, and drops a client that never finishes its request', async () => {
    const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, () => 'demo_metric 1\n', {
      maxConnections: 4,
      headersTimeoutMs: 300,
      requestTimeoutMs: 400,
      keepAliveTimeoutMs: 300,
      lifetimeMs: 1000,
    });
    try {
      const { port } = server.address;
      const ok = await raw(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n');
      assert.match(ok, /^HTTP\/1\.1 200 OK/);
      assert.match(ok, /content-type: text\/plain; version=0\.0\.4/i);
      assert.match(ok, /\r\n\r\ndemo_metric 1\n$/);
      assert.match(
        await raw(port, 'POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n'),
        /^HTTP\/1\.1 405/,
      );
      assert.match(await raw(port, 'GET /other HTTP/1.1\r\nHost: x\r\n\r\n'), /^HTTP\/1\.1 404/);
      assert.match(await raw(port, '\x00\x01garbage\r\n\r\n'), /^HTTP\/1\.1 400/);
      // Slowloris: half a request head, then silence; the server closes it (the raw() promise ends).
      const started = Date.now();
      await raw(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\n');
      assert.ok(Date.now() - started < 5000);
      // A trickling slowloris (a header line every 100 ms, never the end) is dropped all the same.
      const trickle = await new Promise<number>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        const opened = Date.now();
        socket.on('error', () => {});
        socket.write('GET /metrics HTTP/1.1\r\n');
        const timer = setInterval(() => socket.write('X-Slow: y\r\n'), 100);
        socket.on('close', () => {
          clearInterval(timer);
          resolve(Date.now() - opened);
        });
      });
      assert.ok(trickle < 1500, `the trickling client lived ${trickle} ms`);
    } finally {
      await server.close();
    }
  });
});

describe('daemon metrics', () => {
  it('maps refusal reasons and answers to bounded labels', () => {
    assert.equal(refusalReason('cannot read pid 4: EACCES'), 'unreadable');
    assert.equal(refusalReason('cannot verify pid 4: gone'), 'unverified');
    assert.equal(refusalReason('something new and odd'), 'other');
    assert.equal(
      refusalReason('cannot verify pid 4: executable /usr/bin/nc is not named mosh-server'),
      'not_mosh_server',
    );
    assert.equal(refusalReason('cannot verify pid 4: traced by pid 9'), 'traced');
    assert.equal(refusalReason('user eve is not in allow_users or allow_groups'), 'policy');
    assert.equal(refusalReason('user eve already holds 10 ports (max_sessions_per_user)'), 'per_user_cap');
    assert.equal(
      refusalReason(
        'port 60001 is also held by pid 5 (cannot verify pid 5: traced by pid 9); opening it would expose that process',
      ),
      'shared',
    );
    assert.equal(
      refusalReason('cannot verify pid 4: executable /x/mosh-server is owned by uid 1000, not root'),
      'untrusted_binary',
    );
    assert.equal(requestOutcome({ ok: true, op: 'open', port: 1, state: 'open' }), 'open');
    assert.equal(requestOutcome({ ok: false, error: 'bad' }), 'bad_request');
    assert.equal(requestOutcome({ ok: false, port: 1, error: 'reconcile failed: x' }), 'failed');
    assert.equal(requestOutcome({ ok: false, port: 1, error: 'port 1 refused: y' }), 'refused');
  });

  it('counts a refused holder once while it holds its port, and its text passes promtool', () => {
    let now = 0;
    const metrics = createDaemonMetrics({ version: '1.2.3', backend: () => 'ufw', now: () => now });
    const squatter = {
      pid: 7,
      uid: 1000,
      user: 'alice',
      port: 60005,
      family: 'v4' as const,
      localAddress: '0.0.0.0',
      exe: '/usr/bin/nc',
      reason: 'cannot verify pid 7: /proc/7/maps does not exist',
    };
    metrics.reconciled(report([60001], [squatter]), 0.02, now);
    now = 5000;
    metrics.reconciled(report([], [squatter]), 0.02, now);
    now = 7000;
    metrics.requestAnswered({ ok: true, op: 'open', port: 60001, state: 'open' }, 0.03);
    const text = metrics.render();
    assert.match(text, /^moshwall_refusals_total\{reason="unverified"\} 1$/m);
    assert.match(text, /^moshwall_opens_total\{family="v4"\} 1$/m);
    assert.match(text, /^moshwall_sessions\{family="v4"\} 0$/m);
    assert.match(text, /^moshwall_last_good_reconcile_age_seconds 2$/m);
    assert.match(text, /^moshwall_build_info\{version="1\.2\.3",backend="ufw"\} 1$/m);
    assert.ok(!text.includes('alice'));
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(check.error, undefined, 'promtool must be installed');
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
  });

  it('labels sessions by user only when asked', () => {
    const metrics = createDaemonMetrics({
      version: 't',
      backend: () => 'ufw',
      now: () => 0,
      userLabel: true,
    });
    metrics.reconciled(report([60001]), 0.01, 0);
    assert.match(metrics.render(), /^moshwall_sessions\{family="v4",user="[^"]+"\} 1$/m);
  });

  it('times firewall commands and counts the ones that fail, labelled by tool only', async () => {
    let now = 0;
    const metrics = createDaemonMetrics({ version: 't', backend: () => 'ufw', now: () => 0 });
    const run = metrics.timedRunner(
      async (argv) => {
        now += 40;
        return { argv, exitCode: argv[1] === 'bad' ? 1 : 0, stdout: '', stderr: '', durationMs: 40 };
      },
      () => now,
    );
    await run(['/usr/sbin/ufw', 'status'], { timeoutMs: 1000 });
    await run(['/usr/sbin/ufw', 'bad'], { timeoutMs: 1000 });
    await run(['/tmp/evil', 'x'], { timeoutMs: 1000 });
    const text = metrics.render();
    assert.match(text, /^moshwall_firewall_command_duration_seconds_count\{command="ufw"\} 2$/m);
    assert.match(text, /^moshwall_firewall_command_duration_seconds_sum\{command="ufw"\} 0.08$/m);
    assert.match(text, /^moshwall_firewall_command_failures_total\{command="ufw"\} 1$/m);
    assert.match(text, /^moshwall_firewall_command_duration_seconds_count\{command="other"\} 1$/m);
  });
});

describe('doctor on metrics', () => {
  it('says nothing when metrics_listen is unset, ok when it answers, warns when not', async () => {
    const { metricsFinding } = await import('../../../src/doctor.ts');
    const { probeMetrics } = await import('../../../src/metrics/probe.ts');
    const base = parseConfig('', 'x.toml');
    assert.equal(metricsFinding(base, undefined), undefined);
    const server = await startMetricsServer({ host: '127.0.0.1', port: 0 }, () => 'moshwall_build_info 1\n');
    const config = { ...base, metricsListen: server.address };
    try {
      const finding = metricsFinding(config, await probeMetrics(server.address));
      assert.equal(finding?.level, 'ok', finding?.message);
    } finally {
      await server.close();
    }
    const gone = metricsFinding(config, await probeMetrics(server.address));
    assert.equal(gone?.level, 'warn');
    assert.match(gone?.message ?? '', /does not answer: ECONNREFUSED/);
  });
});
