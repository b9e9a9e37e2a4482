// The `kvcake` command as a user runs it: every option in --help, clear errors for what is
// not there, and a served model that shuts down gracefully on SIGTERM.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { benchServeCommand } from '../../lib/cli/bench-serve.js';
import { serveCommand } from '../../lib/cli/serve.js';
import { CONFIG } from '../server/util.js';

const run = promisify(execFile);
const BIN = path.resolve('bin/kvcake.js');

async function kvcake(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [BIN, ...args], { timeout: 60_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('cli: serve --help and bench-serve --help list every option', async () => {
  for (const [cmd, make] of [['serve', serveCommand], ['bench-serve', benchServeCommand]] as const) {
    const r = await kvcake([cmd, '--help']);
    assert.is(r.code, 0, r.stderr);
    const opts = make().options.filter((o) => !o.hidden);
    assert.ok(opts.length > 10);
    for (const o of opts) assert.ok(r.stdout.includes(o.long!), `${cmd} --help lacks ${o.long}`);
  }
});

test('cli: options that cannot work are errors that say why', async () => {
  const store = await kvcake(['serve', '--dummy', 'tiny', '--store', 'tape:/dev/st0']);
  assert.is(store.code, 2);
  assert.match(store.stderr, /unknown tier "tape:\/dev\/st0"; expected tiers separated by commas: memory:SIZE, disk:PATH, redis:\/\/HOST:PORT/);
  const twice = await kvcake(['serve', '--dummy', 'tiny', '--store', 'memory:1GiB,memory:2GiB']);
  assert.is(twice.code, 2);
  assert.match(twice.stderr, /memory given twice/);
  const chunk = await kvcake(['serve', '--dummy', 'tiny', '--store', 'memory:64MiB', '--store-chunk-tokens', '100']);
  assert.is(chunk.code, 2);
  assert.match(chunk.stderr, /--store-chunk-tokens 100 must be a multiple of --block-size 16/);
  const none = await kvcake(['serve']);
  assert.is(none.code, 2);
  assert.match(none.stderr, /give one of --model DIR or --dummy CONFIG/);
  const size = await kvcake(['serve', '--dummy', 'tiny', '--device-kv', 'lots']);
  assert.is(size.code, 2);
  assert.match(size.stderr, /--device-kv <size>' argument 'lots' is invalid. expected a size such as 512MiB/);
  const backend = await kvcake(['serve', '--dummy', 'tiny', '--backend', 'tpu']);
  assert.is(backend.code, 2);
  assert.match(backend.stderr, /Allowed choices are cpu, cuda/);
});

test('cli: kvcake serve (with a prefix store) answers, and SIGTERM lets the request in flight finish before it exits 0', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvcake-cli-'));
  const cfg = path.join(dir, 'config.json');
  writeFileSync(cfg, JSON.stringify(CONFIG));
  const store = path.join(dir, 'store');
  const child = spawn(process.execPath, [BIN, 'serve', '--dummy', cfg, '--port', '0', '--device-kv', '16MiB', '--host-kv', '16MiB', '--log-level', 'warn', '--policy', 'cake', '--store', `memory:64MiB,disk:${store}`, '--store-chunk-tokens', '32'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    const deadline = Date.now() + 60_000;
    while (!/listening on (http:\/\/\S+)/.test(out)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`server did not start: ${out} ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const url = /listening on (http:\/\/\S+)/.exec(out)![1];
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/, 'binds loopback by default');
    assert.match(out, /prefix store memory -> disk \S+ \(0 chunks\)/);
    const res = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'hello', max_tokens: 40, ignore_eos: true, stream: true }),
    });
    assert.is(res.status, 200);
    const reader = res.body!.getReader();
    const first = await reader.read();
    assert.ok(!first.done);
    child.kill('SIGTERM');
    let body = new TextDecoder().decode(first.value);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      body += new TextDecoder().decode(value);
    }
    assert.ok(body.trimEnd().endsWith('data: [DONE]'), body.slice(-200));
    assert.match(body, /"finish_reason":"length"/);
    assert.is(await exited, 0, err);
    assert.match(out, /kvcake serve: stopped/);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
