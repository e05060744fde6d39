import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import type { DaemonResponse } from '../../../src/daemon/protocol.ts';
import { connectPort, createConnectSplitter } from '../../../src/shim/connect-line.ts';
import { runShim } from '../../../src/shim/shim.ts';

const KEY = 'AbCdEfGhIjKlMnOpQrStUv';
const CONNECT = `MOSH CONNECT 60001 ${KEY}\n`;

describe('connectPort', () => {
  const cases: [string, number | undefined][] = [
    [`MOSH CONNECT 60001 ${KEY}`, 60001],
    [`MOSH CONNECT 60001 ${KEY}\r`, 60001],
    [`MOSH CONNECT 70000 ${KEY}`, undefined],
    [`MOSH CONNECT 60001 short`, undefined],
    [` MOSH CONNECT 60001 ${KEY}`, undefined],
    [`MOSH CONNECT 60001 ${KEY} extra`, undefined],
  ];
  for (const [line, port] of cases)
    it(`reads ${JSON.stringify(line)} as ${port}`, () => assert.equal(connectPort(line), port));
});

describe('createConnectSplitter', () => {
  it('passes lines before MOSH CONNECT, holds it and what follows until released', () => {
    const splitter = createConnectSplitter();
    const first = splitter.push(Buffer.from(`\nMOSH CONN`));
    assert.equal(first.pass.toString(), '\n');
    assert.equal(first.connect, undefined);
    const second = splitter.push(Buffer.from(`ECT 60001 ${KEY}\ntail`));
    assert.equal(second.pass.toString(), '');
    assert.deepEqual(second.connect, { port: 60001 });
    assert.equal(splitter.push(Buffer.from('-more')).pass.toString(), '');
    assert.equal(splitter.release().toString(), `MOSH CONNECT 60001 ${KEY}\ntail-more`);
    assert.equal(
      splitter.push(Buffer.from('after')).pass.toString(),
      'after',
      'after release, bytes pass at once',
    );
  });

  it('never holds a long line, nor mistakes its rest for a connect line', () => {
    const splitter = createConnectSplitter();
    const long = 'x'.repeat(200);
    assert.equal(splitter.push(Buffer.from(long)).pass.toString(), long);
    const rest = splitter.push(Buffer.from(`MOSH CONNECT 60001 ${KEY}\n`));
    assert.equal(rest.connect, undefined);
    assert.equal(rest.pass.toString(), `MOSH CONNECT 60001 ${KEY}\n`);
  });
});

/** Runs the shim over a fake server that writes `chunks`, with a daemon answering `answer`. */
async function shimWith(
  chunks: string[],
  answer: () => Promise<DaemonResponse>,
  exit = { code: 0, signal: null },
) {
  const stdout = new PassThrough();
  const events: string[] = [];
  const written: string[] = [];
  const status = runShim({
    startServer: () => ({
      stdout,
      exited: new Promise((resolve) => stdout.on('end', () => resolve(exit))),
    }),
    askDaemon: async (port) => {
      events.push(`ask ${port}`);
      const response = await answer();
      events.push('answered');
      return response;
    },
    writeStdout: async (data) => {
      events.push(`write ${JSON.stringify(data.toString())}`);
      written.push(data.toString());
    },
    warn: (message) => events.push(`warn ${message}`),
  });
  for (const chunk of chunks) stdout.write(chunk);
  stdout.end();
  return { status: await status, events, output: written.join('') };
}

describe('runShim', () => {
  it('writes MOSH CONNECT only after the daemon answered, every byte unchanged, exit code passed on', async () => {
    const result = await shimWith(
      ['\n', CONNECT],
      async () => ({ ok: true, op: 'open', port: 60001, state: 'open' }),
      {
        code: 0,
        signal: null,
      },
    );
    assert.equal(result.output, `\n${CONNECT}`);
    const connectWrite = result.events.findIndex((event) => event.includes('MOSH CONNECT'));
    assert.ok(connectWrite > result.events.indexOf('answered'), result.events.join('\n'));
    assert.deepEqual(result.status, { code: 0, signal: null });
  });

  it('still passes MOSH CONNECT on, with a warning, when the daemon is unreachable — and never prints the key', async () => {
    const result = await shimWith([CONNECT], async () => {
      throw new Error('connect ENOENT /run/moshwall/moshwall.sock');
    });
    assert.equal(result.output, CONNECT);
    const warning = result.events.find((event) => event.startsWith('warn')) ?? '';
    assert.match(warning, /could not reach the moshwall daemon .*ENOENT.*poll will open port 60001/);
    assert.ok(!warning.includes(KEY));
  });

  it('warns on a refusal and passes the line on; passes a failing exit code through', async () => {
    const result = await shimWith(
      [CONNECT],
      async () => ({ ok: false, port: 60001, error: 'port 60001 refused: traced by pid 1' }),
      { code: 1, signal: null },
    );
    assert.equal(result.output, CONNECT);
    assert.ok(result.events.some((event) => /not opened for port 60001: port 60001 refused/.test(event)));
    assert.deepEqual(result.status, { code: 1, signal: null });
  });

  it('asks nothing when there is no MOSH CONNECT line (e.g. mosh-server --help)', async () => {
    const result = await shimWith(['Usage: mosh-server new [-s] ...\n', 'no newline at end'], async () => {
      throw new Error('must not be called');
    });
    assert.equal(result.output, 'Usage: mosh-server new [-s] ...\nno newline at end');
    assert.ok(!result.events.some((event) => event.startsWith('ask')));
  });
});
