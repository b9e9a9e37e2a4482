// Process lifetime with ops in flight: pending ops keep Node alive until they settle, and
// exiting (process.exit, or dropping every handle) while copies run neither crashes nor
// hangs. Each case runs in a child process.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function runChild(body: string): { status: number | null; stdout: string; stderr: string } {
  const src = `import { createBackend } from ${JSON.stringify(path.join(root, 'lib', 'index.ts'))};\n${body}`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', src], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, FORCE_COLOR: '0' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const SETUP = `
const be = createBackend({ backend: 'cpu' });
const geo = { numBlocks: 512, numKvHeads: 8, headDim: 128, blockSize: 16, dtype: 'fp16' };
const dev = be.createPool({ tier: 'device', ...geo });
const host = be.createPool({ tier: 'host', ...geo });
const pairs = Int32Array.from({ length: 1024 }, (_, i) => i >> 1);
`;

test('a pending op keeps the process alive until it settles', () => {
  const r = runChild(`${SETUP}
let done = 0;
for (let i = 0; i < 8; i++) be.copyBlocks(dev, host, pairs).then(() => done++);
process.on('exit', () => console.log('settled ' + done));
`);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /settled 8/, r.stderr);
});

test('process.exit with copies in flight exits cleanly', () => {
  const r = runChild(`${SETUP}
for (let i = 0; i < 8; i++) be.copyBlocks(dev, host, pairs);
dev.release();
process.exit(0);
`);
  assert.is(r.status, 0, r.stderr);
});

test('dropping every handle with work queued, then exiting normally', () => {
  const r = runChild(`${SETUP}
const w = be.copyBlocks(dev, host, pairs);
dev.release();
host.release();
await w;
console.log('live ' + be.liveBytes('device') + ' ' + be.liveBytes('host'));
`);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /live 0 0/, r.stderr);
});

test.run();
