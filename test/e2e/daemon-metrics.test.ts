// The daemon's Prometheus endpoint (issue 14 §1) in the lab: `metrics_listen` on the server host's
// loopback, a real mosh session opened through the shim, then a scrape (checked by promtool) that counts
// it; slowloris and garbage clients held on the endpoint while a session opens do not keep it closed and
// are dropped by the server; and a real Prometheus in the server host scrapes the daemon and answers a
// query with the session count.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Daemon, endStarted, installShim, moshwall, moshwallArgv, startDaemon } from './_daemon.ts';
import { expectedOurs, ourTuples, useLab } from './_moshwall.ts';
import { waitUntil } from './_poll.ts';
import { signalPid } from './_procfs.ts';
import { CLIENT_V4, createLab, labSkipReason } from './lab.ts';

const HOG = fileURLToPath(new URL('./fixtures/http-hog.mjs', import.meta.url));
const PORT = 9654;
const DASHBOARD = fileURLToPath(new URL('../../deploy/grafana/moshwall-dashboard.json', import.meta.url));
const CONFIG = `backend = "ufw"\nufw_fast_path = "off"\nport_range = "60000:61000"\nmetrics_listen = "127.0.0.1:${PORT}"\n`;

/** One value of a scraped text: the sample `name{labels}` exactly, or undefined when absent. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((each) => each.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('daemon metrics endpoint in the lab', { skip: labSkipReason() }, () => {
  let daemon: Daemon | undefined;
  const started: number[] = [];
  const theLab = useLab(
    () => createLab(),
    () => endStarted(theLab(), started, daemon),
  );
  const theDaemon = (): Daemon => {
    assert.ok(daemon, 'the daemon did not start in before()');
    return daemon;
  };
  /** Runs the hog fixture in the server host as root and parses its JSON line. */
  const hog = async (args: string[], timeoutMs = 30_000): Promise<Record<string, unknown>> => {
    const result = await theLab().runServer([process.execPath, HOG, ...args], { timeoutMs });
    assert.equal(result.exitCode, 0, result.stderr);
    return JSON.parse(result.stdout) as Record<string, unknown>;
  };
  /** GET /metrics from inside the server host: status and body. */
  const scrape = async (path = '/metrics', method = 'GET') => {
    const answer = await hog(['get', '127.0.0.1', String(PORT), path, method]);
    return { status: Number(answer.status), body: String(answer.body ?? answer.error ?? '') };
  };

  before(async () => {
    await installShim(theLab());
    daemon = await startDaemon(theLab(), CONFIG);
    await theDaemon().waitForLine(/^info metrics-listening host=127\.0\.0\.1 port=9654/);
  });

  test('a scrape after a real mosh session counts one open, one session, one shim request; promtool accepts it', async (t) => {
    const before = await scrape();
    assert.equal(before.status, 200);
    assert.equal(sample(before.body, 'moshwall_opens_total{family="v4"}'), undefined, 'nothing opened yet');
    const server = await theLab().startMoshServer('alice', { port: 60050 });
    started.push(server.pid);
    assert.deepEqual(ourTuples(await theLab().ufwTuples()), expectedOurs([[60050, 'v4']]));
    await theDaemon().waitForLine(/^debug reconciled sessions=1/);
    const after = await scrape();
    t.diagnostic(
      after.body
        .split('\n')
        .filter((line) => !line.startsWith('#') && !line.includes('_bucket'))
        .join('\n'),
    );
    assert.equal(sample(after.body, 'moshwall_opens_total{family="v4"}'), 1);
    assert.equal(sample(after.body, 'moshwall_sessions{family="v4"}'), 1);
    assert.equal(sample(after.body, 'moshwall_rules{family="v4"}'), 1);
    assert.equal(sample(after.body, 'moshwall_shim_requests_total{outcome="open"}'), 1);
    assert.equal(sample(after.body, 'moshwall_open_latency_seconds_count{outcome="open"}'), 1);
    assert.ok(
      (sample(after.body, 'moshwall_firewall_command_duration_seconds_count{command="ufw"}') ?? 0) >= 1,
    );
    assert.match(after.body, /^moshwall_build_info\{version="\d+\.\d+\.\d+[^"]*",backend="ufw"\} 1$/m);
    assert.ok(!after.body.includes('alice'), 'no user name in the metrics by default');
    const check = spawnSync('promtool', ['check', 'metrics'], { input: after.body, encoding: 'utf8' });
    assert.equal(check.error, undefined, 'promtool is installed');
    assert.equal(check.status, 0, `${check.stdout}${check.stderr}`);
    // status (issue 14 §4): when the daemon opened the port, and the client's address.
    const status = await moshwall(theLab(), ['status', '--json']);
    assert.equal(status.exitCode, 0, status.stderr);
    const sessions = (JSON.parse(status.stdout) as { sessions: Array<Record<string, unknown>> }).sessions;
    const mine = sessions.find((entry) => entry.port === 60050);
    t.diagnostic(`status --json session: ${JSON.stringify(mine)}`);
    assert.equal(mine?.clientAddress, CLIENT_V4);
    const openedAtMs = Number(mine?.openedAtMs);
    assert.ok(Math.abs(Date.now() - openedAtMs) < 60_000, `opened ${openedAtMs}, now ${Date.now()}`);
    assert.equal(mine?.clientAddressFrom, 'login', 'no UDP from the client yet: the login says');
    // A datagram from the client makes a conntrack flow to the port: status now takes the address from it.
    assert.ok(await theLab().udpReachable(60050, 'v4'), 'the open port is reachable');
    const flowed = await moshwall(theLab(), ['status', '--json']);
    const viaFlow = (JSON.parse(flowed.stdout) as { sessions: Array<Record<string, unknown>> }).sessions.find(
      (entry) => entry.port === 60050,
    );
    assert.equal(viaFlow?.clientAddressFrom, 'conntrack', JSON.stringify(viaFlow));
    assert.equal(viaFlow?.clientAddress, CLIENT_V4);
    const text = await moshwall(theLab(), ['status']);
    assert.match(
      text.stdout,
      new RegExp(`60050 .*${CLIENT_V4.replace(/\./g, '\\.')} .* \\d+s ago `),
      text.stdout,
    );
    await theLab().killServerProcess(server.pid);
    await theDaemon().waitForLine(/^info closed port=60050 family=v4 /, { timeoutMs: 10_000 });
    await theDaemon().waitForLine(/^debug reconciled sessions=0/);
    const closed = await scrape();
    assert.equal(sample(closed.body, 'moshwall_closes_total{family="v4"}'), 1);
    assert.equal(sample(closed.body, 'moshwall_sessions{family="v4"}'), 0);
  });

  test('status --watch redraws every --interval (off a terminal: block after block) and ends with 0 on SIGINT', async () => {
    const watching = await theLab().startServer(moshwallArgv(['status', '--watch', '--interval', '0.5']));
    started.push(watching.pid);
    assert.ok(
      await waitUntil(
        () => (watching.output().stdout.match(/^sessions \(\d+\):/gm) ?? []).length >= 3,
        15_000,
        50,
      ),
      `three redraws: ${watching.output().stdout}${watching.output().stderr}`,
    );
    signalPid(watching.pid, 'SIGINT');
    const ended = await watching.done;
    assert.equal(ended.exitCode, 0, ended.stderr);
    assert.match(ended.stdout, /\(every 0\.5 s, \d{4}-\d\d-\d\dT[\d:.]+Z; Ctrl-C ends\)/);
    assert.ok(!ended.stdout.includes('\u001b['), 'no escape codes off a terminal');
  });

  test('only GET /metrics: 404 and 405 otherwise; doctor says the endpoint answers', async () => {
    assert.equal((await scrape('/')).status, 404);
    assert.equal((await scrape('/metrics', 'POST')).status, 405);
    assert.equal((await scrape('/metrics', 'DELETE')).status, 405);
    const doctor = await moshwall(theLab(), ['doctor']);
    assert.match(doctor.stdout, /metrics endpoint 127\.0\.0\.1:9654 answers GET \/metrics/, doctor.stdout);
  });

  test('slowloris and garbage clients on the endpoint while a session opens: it opens, they are dropped', async (t) => {
    const slow = theLab().startServer([
      process.execPath,
      HOG,
      'slowloris',
      '127.0.0.1',
      String(PORT),
      '40',
      '8000',
      '300',
    ]);
    const garbage = hog(['garbage', '127.0.0.1', String(PORT), '30']);
    const slowProcess = await slow;
    started.push(slowProcess.pid);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const from = theDaemon().lines().length;
    const opening = performance.now();
    const server = await theLab().startMoshServer('bob', { port: 60060 });
    const openMs = Math.round(performance.now() - opening);
    started.push(server.pid);
    assert.deepEqual(
      ourTuples(await theLab().ufwTuples()),
      expectedOurs([[60060, 'v4']]),
      'rule present when MOSH CONNECT arrived, with the endpoint under attack',
    );
    await theDaemon().waitForLine(/^info request-served port=60060 state=open$/, { from });
    const slowDone = await slowProcess.done;
    const slowOutcome = JSON.parse(slowDone.stdout) as {
      opened: number;
      closedByServer: number;
      closedAfterMs: number[];
    };
    const garbageOutcome = (await garbage) as { answers: string[] };
    t.diagnostic(
      `mosh-server over ssh with the hogs: ${openMs} ms; slowloris ${JSON.stringify(slowOutcome)}`,
    );
    t.diagnostic(`garbage answers: ${JSON.stringify([...new Set(garbageOutcome.answers)])}`);
    assert.equal(
      slowOutcome.closedByServer,
      40,
      'every slowloris connection was dropped (by the header timeout, or at once past the connection cap)',
    );
    // Past the connection cap a client is closed unanswered (''); else garbage gets a 4xx.
    assert.ok(garbageOutcome.answers.every((answer) => answer === '' || /^HTTP\/1\.1 4\d\d /.test(answer)));
    assert.ok(
      slowOutcome.closedAfterMs.every((ms) => ms < 7000),
      'no slowloris connection outlived the endpoint lifetime (5 s) by much',
    );
    const alone = (await hog(['garbage', '127.0.0.1', String(PORT), '3'])) as { answers: string[] };
    assert.ok(
      alone.answers.every((answer) => /^HTTP\/1\.1 4\d\d /.test(answer)),
      JSON.stringify(alone),
    );
    assert.equal((await scrape()).status, 200, 'scrapes are served again afterwards');
    assert.ok(theDaemon().running());
    await theLab().killServerProcess(server.pid);
  });

  test('a real Prometheus in the server host scrapes the daemon; a query returns the session count', async (t) => {
    const server = await theLab().startMoshServer('alice', { port: 60070 });
    started.push(server.pid);
    const dir = join(theLab().dir, 'prometheus');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'prometheus.yml'),
      `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: moshwall\n    static_configs:\n      - targets: ['127.0.0.1:${PORT}']\n`,
    );
    const prometheus = await theLab().startServer([
      'prometheus',
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      '--web.listen-address=127.0.0.1:19090',
      '--log.level=warn',
    ]);
    started.push(prometheus.pid);
    let result: unknown;
    const answered = await waitUntil(
      async () => {
        const answer = await theLab().runServer(
          [process.execPath, HOG, 'get', '127.0.0.1', '19090', '/api/v1/query?query=sum(moshwall_sessions)'],
          { timeoutMs: 10_000 },
        );
        const body = (JSON.parse(answer.stdout || '{}') as { body?: string }).body ?? '';
        try {
          result = (JSON.parse(body) as { data?: { result?: Array<{ value: [number, string] }> } }).data
            ?.result;
        } catch {
          result = undefined;
        }
        return Array.isArray(result) && result.length > 0;
      },
      40_000,
      1000,
    );
    t.diagnostic(`prometheus: sum(moshwall_sessions) = ${JSON.stringify(result)}`);
    assert.ok(
      answered,
      `Prometheus never answered with a sample: ${prometheus.output().stderr.slice(-2000)}`,
    );
    const [first] = result as Array<{ value: [number, string] }>;
    const own = (await scrape()).body;
    const live =
      (sample(own, 'moshwall_sessions{family="v4"}') ?? 0) +
      (sample(own, 'moshwall_sessions{family="v6"}') ?? 0);
    assert.ok(live >= 1, 'the daemon counts the session');
    assert.equal(first?.value[1], String(live), "Prometheus's answer is the daemon's count");
    // The Grafana dashboard's queries (deploy/grafana), with its variables filled in, run and the
    // instant ones of gauges return data.
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
    };
    // A few more scrapes, so rates over the window have two samples.
    await new Promise((resolve) => setTimeout(resolve, 5000));
    const empty: string[] = [];
    for (const panel of dashboard.panels) {
      for (const target of panel.targets) {
        const expr = target.expr.replaceAll('$instance', '.+').replaceAll('$__rate_interval', '1m');
        const answer = await theLab().runServer(
          [
            process.execPath,
            HOG,
            'get',
            '127.0.0.1',
            '19090',
            `/api/v1/query?query=${encodeURIComponent(expr)}`,
          ],
          { timeoutMs: 10_000 },
        );
        const body = JSON.parse((JSON.parse(answer.stdout) as { body: string }).body) as {
          status: string;
          data?: { result?: unknown[] };
        };
        assert.equal(body.status, 'success', `${panel.title}: ${expr}`);
        if ((body.data?.result ?? []).length === 0) empty.push(`${panel.title}: ${expr}`);
      }
    }
    t.diagnostic(`dashboard queries without data yet: ${empty.length}\n${empty.join('\n')}`);
    // Only series that exist once something failed or was refused may be empty (this lab run has neither).
    const mayBeEmpty = /command_failures_total|refusals_total|result="failed"/;
    const missing = empty.filter((line) => !mayBeEmpty.test(line));
    assert.deepEqual(missing, [], 'every other dashboard query returns data');
    await theLab().killServerProcess(prometheus.pid);
    await theLab().killServerProcess(server.pid);
  });
});
