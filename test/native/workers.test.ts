// Worker threads that end with kvcake ops in flight: worker.terminate(), process.exit()
// or an uncaught exception inside a busy worker, a worker that returns with ops pending,
// and the main thread exiting while workers are busy. Each must end the worker (or the
// process) cleanly, never abort it. Every case runs in a child process, many workers
// each; KVCAKE_WORKER_ROUNDS raises the rounds (npm run fuzz does).
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { addonPath } from '../../lib/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const driver = path.join(here, 'fixtures', 'worker-driver.mjs');
const ROUNDS = Number(process.env.KVCAKE_WORKER_ROUNDS ?? 6);
const PER_ROUND = 3;

function drive(mode: string, rounds: number): { status: number | null; signal: string | null; out: string } {
  const r = spawnSync(process.execPath, [driver, addonPath(), mode, String(rounds), String(PER_ROUND)], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, FORCE_COLOR: '0' },
  });
  return { status: r.status, signal: r.signal, out: `${r.stdout}\n${r.stderr}` };
}

for (const [mode, code] of [
  ['terminate', 1],
  ['exit', 0],
  ['throw', 1],
  ['settle', 0],
] as const) {
  test(`${mode}: ${ROUNDS * PER_ROUND} busy workers end cleanly, the main thread's backend carries on`, () => {
    const r = drive(mode, ROUNDS);
    assert.is(r.signal, null, `the process died of ${r.signal}:\n${r.out}`);
    assert.is(r.status, 0, r.out);
    assert.match(r.out, `workers ended: ${ROUNDS * PER_ROUND}, exit codes: ${code}`);
    assert.match(r.out, 'main backend live bytes after release: 0');
    if (mode === 'settle') assert.match(r.out, `workers whose ops all settled before exit: ${ROUNDS * PER_ROUND}`);
  });
}

test(`main-thread process.exit while ${PER_ROUND} workers are busy, ${ROUNDS} times`, () => {
  for (let i = 0; i < ROUNDS; i++) {
    const r = drive('main-exit', 1);
    assert.is(r.signal, null, `the process died of ${r.signal}:\n${r.out}`);
    assert.is(r.status, 0, r.out);
    assert.match(r.out, 'main-exit: every worker busy, exiting');
  }
});

test.run();
