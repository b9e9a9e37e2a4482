// Memory handed back: after a long mixed workload (pools of 1-38 MiB in both tiers,
// tensors, reads, writes, copies, attention) and every pool and tensor released, the
// process's resident set is within 16 MiB of where it was before the first pool. Runs in
// a child process, so nothing else in the test run moves the numbers. The child allocates
// its JS inputs once, before the first measurement (see the fixture), so the figure is what
// kvcake hands back, not Node's allocator keeping freed typed arrays.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');

test('RSS returns to within 16 MiB of its start once everything is released', () => {
  const r = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', path.join(here, 'fixtures', 'rss-workload.ts'), '12'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.is(r.status, 0, r.stderr);
  const m = /rss before ([\d.]+) after ([\d.]+) live (\d+)/.exec(r.stdout);
  assert.ok(m, r.stdout + r.stderr);
  const [before, after, live] = [Number(m![1]), Number(m![2]), Number(m![3])];
  assert.is(live, 0);
  assert.ok(after - before <= 16, `RSS ${before.toFixed(1)} MiB before the first pool, ${after.toFixed(1)} MiB after releasing everything`);
});

test.run();
