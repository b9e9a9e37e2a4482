// npm run fuzz: the fuzz suites (test/fuzz) at 20x their npm test size with a fresh seed,
// and the worker-thread tests at 30 rounds. The seed is printed first; a failure prints it
// again with the property that failed, so the run can be repeated:
//   KVCAKE_FUZZ_SEED=<seed> npm run fuzz
// KVCAKE_FUZZ_SCALE and KVCAKE_WORKER_ROUNDS override the sizes.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const seed = process.env.KVCAKE_FUZZ_SEED ?? String(Math.floor(Math.random() * 2 ** 31));
const env = {
  ...process.env,
  KVCAKE_FUZZ_SEED: seed,
  KVCAKE_FUZZ_SCALE: process.env.KVCAKE_FUZZ_SCALE ?? '20',
  KVCAKE_WORKER_ROUNDS: process.env.KVCAKE_WORKER_ROUNDS ?? '30',
};
console.log(`kvcake fuzz: seed ${seed}, scale ${env.KVCAKE_FUZZ_SCALE}, worker rounds ${env.KVCAKE_WORKER_ROUNDS} (repeat with KVCAKE_FUZZ_SEED=${seed} npm run fuzz)`);
const child = spawn(process.execPath, [path.join(root, 'scripts', 'test.mjs'), '(fuzz/|native/workers)'], { cwd: root, env, stdio: 'inherit' });
child.on('close', (code) => {
  if (code !== 0) console.log(`kvcake fuzz: FAILED with seed ${seed}`);
  process.exit(code ?? 1);
});
