// A self-contained HTML report of serving runs: one file with Chart.js and the data
// inlined, so it opens from disk or an artifact store with no network. It draws
//   - TTFT p50 and p99 against the request rate, one line per policy (or server);
//   - the TTFT CDF of every run;
//   - KV usage per tier over time, one small chart per run;
// and a table of the vLLM-style figures. Runs can come from the server benchmark or from
// the simulator (drawn dotted), so a prediction and a measurement sit on the same axes.
//
// Chart library: Chart.js (MIT, maintained, canvas, one UMD file of ~200 KB with every
// chart type registered). uPlot is smaller but wants every series on one shared x array,
// which CDFs of different runs do not have.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { SimulateResult } from '../sim/simulate.js';
import { stat, type RunMetrics } from './metrics.js';
import type { RunResult } from './run.js';

export interface ReportRun {
  label: string;
  source: 'server' | 'sim';
  /** Requests per second (NaN for a trace replay, which has its own). */
  rate: number;
  /** TTFT of every completed request, seconds. */
  ttft: number[];
  /** Fractions of each tier's blocks in use over time (seconds since the run's start). */
  kv: { t: number; device: number | null; host: number | null }[];
  /** The full figures when the run has them (server runs). */
  metrics?: RunMetrics;
}

export function reportRunsFromResults(results: readonly RunResult[]): ReportRun[] {
  return results.map((r) => ({
    label: r.label,
    source: 'server' as const,
    rate: r.rate,
    ttft: r.requests.filter((q) => q.ok).map((q) => q.ttft),
    kv: r.kv.map((s) => ({ t: s.t, device: s.device, host: s.host })),
    metrics: r.metrics,
  }));
}

/**
 * A simulated run for the report. `kv` is what the caller sampled in simulate()'s onStep
 * (e.g. scheduler.kv.device.numUsed / numBlocks at result.end); see simulateForReport.
 */
export function reportRunFromSimulation(label: string, rate: number, sim: SimulateResult, kv: ReportRun['kv'] = []): ReportRun {
  const ttft: number[] = [];
  for (const r of sim.collector.all()) if (r.finishedAt !== undefined && !r.rejected && r.tokenTimes.length > 0) ttft.push(r.tokenTimes[0] - r.arrival);
  return { label, source: 'sim', rate, ttft, kv };
}

function chartJsSource(): string {
  const require = createRequire(import.meta.url);
  const main = require.resolve('chart.js');
  return readFileSync(path.join(path.dirname(main), 'chart.umd.min.js'), 'utf8');
}

/** JSON safe inside <script>: no "</script>", no "<!--". */
function scriptJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

export interface ReportOptions {
  title?: string;
  /** Lines under the title: machine, model, workload. */
  notes?: string[];
}

export function renderReport(runs: readonly ReportRun[], opts: ReportOptions = {}): string {
  const data = {
    title: opts.title ?? 'kvcake serving benchmark',
    notes: opts.notes ?? [],
    generated: new Date().toISOString(),
    runs: runs.map((r) => {
      const s = stat(r.ttft);
      return { ...r, rate: Number.isFinite(r.rate) ? r.rate : null, rateText: Number.isNaN(r.rate) ? 'trace' : Number.isFinite(r.rate) ? String(r.rate) : 'inf', p50: s.median, p99: s.p99 };
    }),
  };
  const lib = chartJsSource().replace(/<\/script/gi, '<\\/script');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>kvcake serving report</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
  h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
  .note { color: #555; margin: 2px 0; }
  .chart { position: relative; height: 360px; max-width: 1000px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 16px; max-width: 1400px; }
  .small { position: relative; height: 220px; }
  table { border-collapse: collapse; margin-top: 8px; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
  th { background: #f4f4f4; } td:first-child, td:nth-child(2) { text-align: left; }
</style>
</head>
<body>
<h1 id="title"></h1>
<div id="notes"></div>
<h2>TTFT vs request rate (p50 solid, p99 dashed)</h2>
<div class="chart"><canvas id="ttft-rate"></canvas></div>
<h2>TTFT CDF</h2>
<div class="chart"><canvas id="ttft-cdf"></canvas></div>
<h2>KV blocks in use per tier over time</h2>
<div class="grid" id="kv"></div>
<h2>Figures</h2>
<table id="figures"></table>
<script type="application/json" id="data">${scriptJson(data)}</script>
<script>${lib}</script>
<script>
(function () {
  'use strict';
  var D = JSON.parse(document.getElementById('data').textContent);
  document.getElementById('title').textContent = D.title;
  D.notes.concat(['generated ' + D.generated]).forEach(function (n) {
    var p = document.createElement('p'); p.className = 'note'; p.textContent = n;
    document.getElementById('notes').appendChild(p);
  });
  var palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22'];
  // One colour per policy (or server); the simulator's runs of it are dotted in the same colour.
  var keys = [];
  D.runs.forEach(function (r) { if (keys.indexOf(r.label) < 0) keys.push(r.label); });
  function colour(r) { return palette[keys.indexOf(r.label) % palette.length]; }
  function dash(r, base) { return r.source === 'sim' ? [2, 3] : base; }
  Chart.defaults.animation = false;
  Chart.defaults.responsive = true;
  Chart.defaults.maintainAspectRatio = false;

  // TTFT p50 / p99 against rate: one pair of lines per policy (and source).
  var byKey = {};
  D.runs.forEach(function (r) {
    if (r.rate === null) return;
    var k = r.label + (r.source === 'sim' ? ' (sim)' : '');
    (byKey[k] = byKey[k] || []).push(r);
  });
  var rateSets = [];
  Object.keys(byKey).forEach(function (k) {
    var rs = byKey[k].slice().sort(function (a, b) { return a.rate - b.rate; });
    [['p50', []], ['p99', [6, 4]]].forEach(function (q) {
      rateSets.push({
        label: k + ' ' + q[0],
        data: rs.filter(function (r) { return r[q[0]] !== null; }).map(function (r) { return { x: r.rate, y: r[q[0]] }; }),
        borderColor: colour(rs[0]), backgroundColor: colour(rs[0]), borderDash: dash(rs[0], q[1]), pointRadius: 3, tension: 0
      });
    });
  });
  new Chart(document.getElementById('ttft-rate'), {
    type: 'line',
    data: { datasets: rateSets },
    options: { parsing: true, scales: { x: { type: 'linear', title: { display: true, text: 'request rate (req/s)' } },
      y: { type: 'linear', beginAtZero: true, title: { display: true, text: 'TTFT (s)' } } } }
  });

  // CDFs: every run; colour by policy, line style by rate.
  var styles = [[], [6, 3], [2, 2], [10, 3, 2, 3]];
  var rates = [];
  D.runs.forEach(function (r) { if (rates.indexOf(r.rateText) < 0) rates.push(r.rateText); });
  var cdfSets = D.runs.map(function (r) {
    var xs = r.ttft.slice().sort(function (a, b) { return a - b; });
    var n = xs.length;
    var step = Math.max(1, Math.floor(n / 400));
    var pts = [];
    for (var i = 0; i < n; i += step) pts.push({ x: xs[i], y: (i + 1) / n });
    if (n > 0) pts.push({ x: xs[n - 1], y: 1 });
    return { label: r.label + (r.source === 'sim' ? ' (sim)' : '') + ' @ ' + r.rateText, data: pts, borderColor: colour(r), backgroundColor: colour(r),
      borderDash: r.source === 'sim' ? [2, 3] : styles[rates.indexOf(r.rateText) % styles.length], pointRadius: 0, stepped: true };
  });
  new Chart(document.getElementById('ttft-cdf'), {
    type: 'line',
    data: { datasets: cdfSets },
    options: { scales: { x: { type: 'linear', beginAtZero: true, title: { display: true, text: 'TTFT (s)' } },
      y: { type: 'linear', min: 0, max: 1, title: { display: true, text: 'fraction of requests' } } } }
  });

  // KV usage over time, one small chart per run that has samples.
  var kvBox = document.getElementById('kv');
  var drawn = 0;
  D.runs.forEach(function (r) {
    if (!r.kv || r.kv.length === 0) return;
    var box = document.createElement('div');
    var h = document.createElement('div'); h.textContent = r.label + (r.source === 'sim' ? ' (sim)' : '') + ' @ ' + r.rateText + ' req/s';
    var wrap = document.createElement('div'); wrap.className = 'small';
    var c = document.createElement('canvas'); wrap.appendChild(c); box.appendChild(h); box.appendChild(wrap); kvBox.appendChild(box);
    var sets = [['device', []], ['host', [6, 4]]].filter(function (t) { return r.kv.some(function (s) { return s[t[0]] !== null; }); }).map(function (t) {
      return { label: t[0], data: r.kv.filter(function (s) { return s[t[0]] !== null; }).map(function (s) { return { x: s.t, y: 100 * s[t[0]] }; }),
        borderColor: colour(r), backgroundColor: colour(r), borderDash: t[1], pointRadius: 0 };
    });
    new Chart(c, { type: 'line', data: { datasets: sets },
      options: { scales: { x: { type: 'linear', title: { display: true, text: 's' } }, y: { min: 0, max: 100, title: { display: true, text: '% of blocks' } } } } });
    drawn++;
  });
  if (drawn === 0) { var p = document.createElement('p'); p.className = 'note'; p.textContent = 'No KV samples (the server exports no KV metrics).'; kvBox.appendChild(p); }

  // The table.
  var t = document.getElementById('figures');
  var cols = ['label', 'source', 'rate', 'completed', 'failed', 'TTFT mean', 'TTFT p50', 'TTFT p99', 'TPOT mean', 'TPOT p99', 'ITL p99', 'E2E p50', 'req/s', 'out tok/s', 'goodput'];
  var head = document.createElement('tr');
  cols.forEach(function (c) { var th = document.createElement('th'); th.textContent = c; head.appendChild(th); });
  t.appendChild(head);
  function f(v, d) { return v === null || v === undefined || (typeof v === 'number' && !isFinite(v)) ? '' : (typeof v === 'number' ? v.toFixed(d === undefined ? 3 : d) : String(v)); }
  D.runs.forEach(function (r) {
    var m = r.metrics;
    var row = [r.label, r.source, r.rateText, m ? m.completed : r.ttft.length, m ? m.failed : '', m ? f(m.ttft.mean) : '', f(r.p50), f(r.p99),
      m ? f(m.tpot.mean, 4) : '', m ? f(m.tpot.p99, 4) : '', m ? f(m.itl.p99, 4) : '', m ? f(m.e2e.median) : '', m ? f(m.requestThroughput, 2) : '',
      m ? f(m.outputThroughput, 1) : '', m && m.goodput !== null ? f(m.goodput, 2) : ''];
    var tr = document.createElement('tr');
    row.forEach(function (v) { var td = document.createElement('td'); td.textContent = String(v); tr.appendChild(td); });
    t.appendChild(tr);
  });
  document.body.setAttribute('data-rendered', 'yes');
})();
</script>
</body>
</html>
`;
}
