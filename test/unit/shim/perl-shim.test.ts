// The perl shim (src/shim/mosh-server.pl) run by the real perl, with a stand-in for the real mosh-server
// (a shell script printing what mosh-server prints) and a stand-in daemon (a unix socket in this test):
// bytes and exit code pass through unchanged, MOSH CONNECT waits for the daemon's answer, and every way
// the daemon can fail still lets the session start, with a warning.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SHIM = fileURLToPath(new URL('../../../src/shim/mosh-server.pl', import.meta.url));
const KEY = 'AbCdEfGhIjKlMnOpQrStUv';

interface Ran {
  stdout: Buffer;
  stderr: string;
  code: number | null;
  /** When the MOSH CONNECT bytes reached our pipe, in ms since the start. */
  connectAtMs: number | undefined;
}

/** Runs the shim with these arguments and config; resolves with what it printed and its exit code. */
function runPerlShim(config: string, dir: string, args: string[] = []): Promise<Ran> {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}.toml`);
  writeFileSync(file, config);
  return new Promise((resolve, reject) => {
    const begun = performance.now();
    const child = spawn('perl', [SHIM, ...args], { env: { PATH: process.env.PATH, MOSHWALL_CONFIG: file } });
    const chunks: Buffer[] = [];
    let stderr = '';
    let connectAtMs: number | undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (connectAtMs === undefined && Buffer.concat(chunks).includes('MOSH CONNECT'))
        connectAtMs = performance.now() - begun;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', reject);
    child.once('close', (code) => resolve({ stdout: Buffer.concat(chunks), stderr, code, connectAtMs }));
  });
}

describe('the perl shim', () => {
  let dir = '';
  let server: Server | undefined;
  const requests: string[] = [];
  /** How the stand-in daemon answers the next request. */
  let answer: { delayMs: number; line: string | undefined } = { delayMs: 0, line: undefined };
  const socketPath = () => join(dir, 'moshwall.sock');
  const fakeServer = () => join(dir, 'mosh-server');
  const config = (extra = '') =>
    `mosh_server = "${fakeServer()}"\nsocket_path = "${socketPath()}"\nshim_timeout_ms = 500\n${extra}`;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'moshwall-perl-shim-'));
    // What mosh-server prints around MOSH CONNECT, binary bytes included, no newline at the end; exit 3.
    writeFileSync(
      fakeServer(),
      `#!/bin/sh\nprintf '\\r\\nhello \\001\\377\\n'\nprintf 'MOSH CONNECT 60123 ${KEY}\\n'\nprintf '[mosh-server detached, pid = 42]\\n'\nprintf 'tail'\nexit 3\n`,
    );
    chmodSync(fakeServer(), 0o755);
    server = createServer((socket) => {
      socket.once('data', (data) => {
        requests.push(data.toString());
        const { delayMs, line } = answer;
        setTimeout(() => {
          if (line === undefined) socket.destroy();
          else socket.end(line);
        }, delayMs);
      });
    });
    await new Promise<void>((resolve) => server?.listen(socketPath(), resolve));
  });

  after(() => {
    server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const EXPECTED = Buffer.concat([
    Buffer.from('\r\nhello '),
    Buffer.from([1, 0xff]),
    Buffer.from(`\nMOSH CONNECT 60123 ${KEY}\n[mosh-server detached, pid = 42]\ntail`),
  ]);

  it('passes every byte and the exit code, and holds MOSH CONNECT until the daemon answered', async () => {
    requests.length = 0;
    answer = { delayMs: 300, line: '{"ok":true,"op":"open","port":60123,"state":"open"}\n' };
    const ran = await runPerlShim(config(), dir, ['new', '-s']);
    assert.deepEqual(ran.stdout, EXPECTED);
    assert.equal(ran.code, 3);
    assert.equal(ran.stderr, '');
    assert.deepEqual(requests, ['{"op":"open","port":60123}\n']);
    assert.ok((ran.connectAtMs ?? 0) >= 290, `MOSH CONNECT arrived after ${ran.connectAtMs} ms`);
  });

  it('a refusal, a silent daemon, a closed connection and no daemon at all each warn, and the session starts', async () => {
    answer = {
      delayMs: 0,
      line: '{"ok":false,"port":60123,"error":"port 60123 is held by \\"nc\\"\\u001b[2J"}\n',
    };
    const refused = await runPerlShim(config(), dir);
    assert.deepEqual(refused.stdout, EXPECTED);
    assert.equal(
      refused.stderr,
      'moshwall: the firewall was not opened for port 60123: port 60123 is held by "nc"\\x1b[2J\n',
    );
    answer = { delayMs: 2000, line: '{"ok":true}\n' };
    const silent = await runPerlShim(config(), dir);
    assert.match(silent.stderr, /could not reach the moshwall daemon \(no answer from .* within 500 ms\)/);
    assert.deepEqual(silent.stdout, EXPECTED);
    answer = { delayMs: 0, line: undefined };
    const closed = await runPerlShim(config(), dir);
    assert.match(closed.stderr, /the daemon closed the connection/);
    const none = await runPerlShim(config().replace('moshwall.sock', 'nothing.sock'), dir);
    assert.match(
      none.stderr,
      /could not reach the moshwall daemon \(No such file or directory\); its poll will open port 60123/,
    );
    assert.equal(none.code, 3);
  });

  it('a config it cannot read plainly warns and uses the defaults; mosh_server naming the shim itself is refused', async () => {
    // The defaults run /usr/bin/mosh-server: asked only for its version here (the e2e lab has it).
    const odd = await runPerlShim(`${config()}mosh_server = "/other"\n`, dir, ['--version']);
    assert.match(
      odd.stderr,
      /mosh_server is not one plain value the shim can read; the shim uses the defaults/,
    );
    assert.match(odd.stdout.toString(), /mosh/);
    const self = await runPerlShim(config().replace(fakeServer(), SHIM), dir);
    assert.match(self.stderr, /is the shim itself; set it to the real mosh-server/);
    assert.equal(self.code, 1);
  });
});
