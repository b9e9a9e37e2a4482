// Benchmark workloads as token ids: exact lengths, shared prefixes shared on the wire,
// reproducible, and trace replay with time scaling.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildWorkload } from '../../lib/serving-bench/workload.js';
import { runMetrics, stat } from '../../lib/serving-bench/metrics.js';
import { kvSample, parsePrometheus } from '../../lib/serving-bench/poll.js';
import type { RequestOutcome } from '../../lib/serving-bench/client.js';

const RANGE = { lo: 10, hi: 200 };

test('workload: synthetic lengths are exact, ids in range, and the same seed gives the same requests', () => {
  const spec = { kind: 'synthetic' as const, n: 50, rate: 4, inputLen: [20, 60] as [number, number], outputLen: 8, seed: 3 };
  const a = buildWorkload(spec, RANGE);
  const b = buildWorkload(spec, RANGE);
  assert.equal(a, b);
  for (const r of a) {
    assert.ok(r.prompt.length >= 20 && r.prompt.length <= 60);
    assert.is(r.outputLen, 8);
    assert.ok(r.prompt.every((t) => Number.isInteger(t) && t >= 10 && t < 200));
  }
  // Poisson at 4 req/s: the mean gap is near 0.25 s.
  const gaps = a.slice(1).map((r, i) => r.arrival - a[i].arrival);
  const mean = gaps.reduce((x, y) => x + y, 0) / gaps.length;
  assert.ok(mean > 0.15 && mean < 0.4, `mean gap ${mean}`);
  const burst = buildWorkload({ ...spec, rate: Infinity }, RANGE);
  assert.ok(burst.every((r) => r.arrival === 0));
});

test('workload: requests of one shared-prefix group share exactly the prefix tokens', () => {
  const reqs = buildWorkload({ kind: 'synthetic', n: 40, rate: 10, inputLen: 100, outputLen: 4, sharedPrefix: { groups: 2, tokens: 64 }, seed: 1 }, RANGE);
  const key = (r: { prompt: number[] }) => r.prompt.slice(0, 64).join(',');
  const groups = new Set(reqs.map(key));
  assert.is(groups.size, 2, 'two distinct shared prefixes');
  // Past the prefix, prompts differ from each other.
  const tails = new Set(reqs.map((r) => r.prompt.slice(64).join(',')));
  assert.is(tails.size, reqs.length);
});

test('workload: Azure and Mooncake traces replay with time scaling; shared hash_ids share tokens', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvcake-trace-'));
  try {
    const azure = path.join(dir, 'azure.csv');
    writeFileSync(azure, 'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.7500000,396,109\n2023-11-16 18:15:51.0000000,879,4\n');
    const a = buildWorkload({ kind: 'azure', path: azure, timeScale: 0.5, maxInputLen: 500 }, RANGE);
    assert.equal(
      a.map((r) => [r.prompt.length, r.outputLen]),
      [
        [374, 44],
        [396, 109],
        [500, 4],
      ],
    );
    assert.ok(Math.abs(a[1].arrival - (50.75 - 46.68059) * 0.5) < 1e-6);
    const moon = path.join(dir, 'moon.jsonl');
    writeFileSync(
      moon,
      [
        { timestamp: 0, input_length: 1100, output_length: 5, hash_ids: [7, 8, 9] },
        { timestamp: 1000, input_length: 1200, output_length: 6, hash_ids: [7, 8, 11] },
        { timestamp: 3000, input_length: 600, output_length: 7, hash_ids: [12, 13] },
      ]
        .map((x) => JSON.stringify(x))
        .join('\n'),
    );
    const m = buildWorkload({ kind: 'mooncake', path: moon, timeScale: 2 }, RANGE);
    assert.equal(
      m.map((r) => r.arrival),
      [0, 2, 6],
    );
    assert.equal(m[0].prompt.slice(0, 1024), m[1].prompt.slice(0, 1024), 'hash_ids 7, 8 are the same 1024 tokens');
    assert.not.equal(m[0].prompt.slice(1024, 1100), m[1].prompt.slice(1024, 1100));
    assert.not.equal(m[0].prompt.slice(0, 512), m[2].prompt.slice(0, 512));
    assert.throws(() => buildWorkload({ kind: 'azure', path: path.join(dir, 'missing.csv') }, RANGE), /trace file not found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('metrics: TTFT, TPOT, ITL, E2E, throughput and goodput as benchmark_serving defines them', () => {
  const o = (id: string, ttft: number, e2e: number, outputTokens: number, itl: number[], ok = true): RequestOutcome => ({
    id,
    ok,
    status: ok ? 200 : 429,
    sentAt: 0,
    promptLen: 10,
    outputLen: outputTokens,
    outputTokens,
    cachedTokens: 0,
    ttft,
    itl,
    e2e,
  });
  const m = runMetrics([o('a', 0.1, 1.1, 11, [0.1, 0.1]), o('b', 0.3, 0.8, 6, [0.1]), o('c', NaN, NaN, 0, [], false)], 2, { ttft: 0.2, tpot: 0.15 });
  assert.is(m.completed, 2);
  assert.is(m.failed, 1);
  assert.equal(m.failures, { 'HTTP 429': 1 });
  assert.is(m.ttft.mean, 0.2);
  assert.ok(Math.abs(m.tpot.mean - (0.1 + 0.1) / 2) < 1e-12, 'TPOT of a = 1/10, of b = 0.5/5');
  assert.is(m.itl.median, 0.1);
  assert.is(m.requestThroughput, 1);
  assert.is(m.outputThroughput, 17 / 2);
  assert.is(m.totalTokenThroughput, 37 / 2);
  assert.is(m.goodput, 0.5, 'only a meets TTFT <= 0.2 s');
  const s = stat([1, 2, 3, 4]);
  assert.equal([s.mean, s.median, s.p90].map((x) => Number(x.toFixed(9))), [2.5, 2.5, 3.7]);
  assert.ok(Math.abs(s.p99 - 3.97) < 1e-12);
});

test('poll: KV usage from kvcake and vLLM metrics text', () => {
  const kv = kvSample(
    'kvcake_kv_blocks_used{tier="device"} 30\nkvcake_kv_blocks_total{tier="device"} 120\nkvcake_kv_blocks_used{tier="host"} 0\nkvcake_kv_blocks_total{tier="host"} 10\nkvcake_requests_waiting 3\n',
    1.5,
  );
  assert.equal(kv, { t: 1.5, device: 0.25, host: 0, waiting: 3, running: null });
  const v = kvSample('# HELP x\nvllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.5\nvllm:num_requests_running{model_name="m"} 4\n', 2);
  assert.equal(v, { t: 2, device: 0.5, host: null, waiting: null, running: 4 });
  assert.equal(parsePrometheus('a{b="c\\"d"} 1\n').get('a'), [{ labels: { b: 'c\\"d' }, value: 1 }]);
});

test.run();
