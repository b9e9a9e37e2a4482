// The serving benchmark against the real server on loopback: a run, the `kvcake
// bench-serve` command end to end, and the HTML report rendered in headless Chromium with
// no console errors (skipped, with the reason printed, where Chromium is not installed).
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildWorkload, renderReport, reportRunsFromResults, runBenchmark, simulateForReport, type RunResult } from '../../lib/serving-bench/index.js';
import { createScheduler, deployment, synthetic } from '../../lib/sim/index.js';
import { serveTiny, type TestServer } from '../server/util.js';

let ts: TestServer;
let run: RunResult;
const dir = mkdtempSync(path.join(os.tmpdir(), 'kvcake-bench-serve-'));

test.before(async () => {
  ts = await serveTiny({ engine: { maxRunning: 8 } });
});
test.after(async () => {
  await ts.close();
  rmSync(dir, { recursive: true, force: true });
});

test('bench: a run against kvcake times every request and samples KV usage', async () => {
  const requests = buildWorkload({ kind: 'synthetic', n: 16, rate: 40, inputLen: [24, 48], outputLen: 8, seed: 2 }, { lo: 0, hi: 256 });
  let progress = 0;
  run = await runBenchmark({ url: ts.url, model: 'tiny', requests, label: 'baseline', rate: 40, metricsIntervalMs: 20, slos: { ttft: 10 }, onProgress: (d) => (progress = d) });
  const m = run.metrics;
  assert.is(progress, 16);
  assert.equal(m.failures, {});
  assert.is(m.completed, 16);
  assert.is(m.totalOutputTokens, 16 * 8);
  assert.is(m.totalInputTokens, requests.reduce((a, r) => a + r.prompt.length, 0));
  assert.ok(m.ttft.mean > 0 && m.ttft.p99 >= m.ttft.median);
  assert.ok(m.tpot.mean > 0);
  assert.ok(m.e2e.median > m.ttft.median);
  assert.is(m.goodput, m.requestThroughput, 'every request meets a 10 s TTFT SLO');
  assert.ok(run.kv.length > 0 && run.kv.every((s) => s.device !== null && s.host !== null));
  assert.is(ts.engine.stats().kv.device.usedBlocks, 0);
});

test('bench: kvcake bench-serve writes a JSON record and a report; failures are counted, not fatal', async () => {
  const out = path.join(dir, 'results');
  const r = await promisify(execFile)(process.execPath, [path.resolve('bin/kvcake.js'), 'bench-serve', '--url', ts.url, '--rate', '20,inf', '--num-prompts', '6', '--input-len', '16:32', '--output-len', '4', '--shared-prefix', '2:16', '--goodput', 'ttft:5000,tpot:1000', '--label', 'kvcake tiny', '--out', out, '--no-progress'], { timeout: 120_000 });
  assert.match(r.stdout, /TTFT p99/);
  const file = JSON.parse(readFileSync(path.join(out, 'serve-kvcake_tiny.json'), 'utf8'));
  assert.is(file.tool, 'kvcake bench-serve');
  assert.is(file.model, 'tiny');
  assert.equal(file.tokenRange, { lo: 0, hi: 300 }, 'vocab_size from /v1/models');
  assert.equal(
    file.runs.map((x: RunResult) => [x.rate, x.metrics.completed]),
    [
      [20, 6],
      [null, 6],
    ],
  );
  assert.ok(existsSync(path.join(out, 'serve-kvcake_tiny.html')));
  // A server that does not answer is an error that names the URL, exit status 1.
  const down = await promisify(execFile)(process.execPath, [path.resolve('bin/kvcake.js'), 'bench-serve', '--url', 'http://127.0.0.1:9', '--no-progress']).catch((e) => e);
  assert.is(down.code, 1);
  assert.match(down.stderr, /--url http:\/\/127\.0\.0\.1:9: cannot reach the server/);
});

function chromiumPath(): string | null {
  if (process.env.KVCAKE_CHROMIUM === 'none') return null;
  for (const p of [process.env.KVCAKE_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser'].filter(Boolean) as string[]) if (existsSync(p)) return p;
  return null;
}

test('report: renders in headless Chromium with no console errors, server and simulator runs together', async () => {
  const dep = deployment('Llama-2-7B', 'L20-48G');
  const simRuns = [];
  for (const policy of ['baseline', 'layerkv'] as const) {
    for (const rate of [0.5, 1]) {
      const requests = synthetic({ n: 30, rate, promptLen: [1800, 2048], outputLen: [64, 128], seed: 1 });
      simRuns.push(await simulateForReport({ label: policy, rate, requests, scheduler: createScheduler({ policy, cost: dep.cost }), cost: dep.cost }));
    }
  }
  assert.ok(simRuns.every((r) => r.ttft.length === 30 && r.kv.length > 0));
  const html = renderReport([...reportRunsFromResults([run]), ...simRuns], { title: 'test <report> & "quotes"', notes: ['</script><script>window.injected = 1</script>'] });
  assert.match(html, /Content-Security-Policy" content="default-src 'none'/, 'the page may load nothing from anywhere');
  const file = path.join(dir, 'report.html');
  writeFileSync(file, html);

  const exe = chromiumPath();
  if (!exe) {
    console.log('  report: skipped the browser check: no Chromium at /usr/bin/chromium (apt-get install chromium, or set KVCAKE_CHROMIUM to its path)');
    return;
  }
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--no-first-run'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1300, height: 1000 } });
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (r) => {
      if (!r.url().startsWith('file:')) problems.push(`network request: ${r.url()}`);
    });
    await page.goto(`file://${file}`);
    await page.waitForSelector('body[data-rendered="yes"]', { timeout: 20_000 });
    // Runs in the page; the test's TypeScript has no DOM types, so the page is typed by hand.
    type Canvas = object;
    const info = await page.evaluate(() => {
      const w = globalThis as unknown as {
        document: { querySelectorAll(s: string): ArrayLike<Canvas>; getElementById(id: string): { textContent: string } | null };
        Chart: { getChart(c: Canvas): { data: { datasets: { data: unknown[] }[] } } | undefined };
        injected?: number;
      };
      const canvases = Array.from(w.document.querySelectorAll('canvas'));
      return {
        title: w.document.getElementById('title')!.textContent,
        charts: canvases.map((c) => w.Chart.getChart(c)?.data.datasets.map((d) => d.data.length) ?? null),
        rows: w.document.querySelectorAll('#figures tr').length,
        injected: w.injected ?? null,
      };
    });
    assert.equal(problems, []);
    assert.is(info.title, 'test <report> & "quotes"');
    assert.is(info.injected, null, 'notes are text, not markup');
    // TTFT vs rate, the CDFs, and one KV chart per run (1 server + 4 simulated).
    assert.is(info.charts.length, 2 + 5);
    assert.ok(info.charts.every((c) => c !== null && c.length > 0 && c.every((n) => n > 0)), JSON.stringify(info.charts));
    assert.is(info.rows, 1 + 5);
    if (process.env.KVCAKE_REPORT_SCREENSHOT) await page.screenshot({ path: process.env.KVCAKE_REPORT_SCREENSHOT, fullPage: true });
  } finally {
    await browser.close();
  }
});

test.run();
