// The summary table of a set of runs, one row per run, in vLLM's units (ms for latencies).
import type { RunResult } from './run.js';

const ms = (s: number) => (Number.isFinite(s) ? Number((s * 1000).toFixed(s < 0.01 ? 3 : 1)) : null);
const num = (x: number, d = 2) => (Number.isFinite(x) ? Number(x.toFixed(d)) : null);

export function summaryRows(runs: readonly RunResult[]): Record<string, number | string | null>[] {
  return runs.map((r) => {
    const m = r.metrics;
    return {
      label: r.label,
      rate: Number.isNaN(r.rate) ? 'trace' : Number.isFinite(r.rate) ? r.rate : 'inf',
      done: m.completed,
      failed: m.failed,
      'TTFT mean ms': ms(m.ttft.mean),
      'TTFT p50': ms(m.ttft.median),
      'TTFT p99': ms(m.ttft.p99),
      'TPOT mean ms': ms(m.tpot.mean),
      'TPOT p99': ms(m.tpot.p99),
      'ITL p99 ms': ms(m.itl.p99),
      'E2E p50 ms': ms(m.e2e.median),
      'req/s': num(m.requestThroughput),
      'out tok/s': num(m.outputThroughput, 1),
      'tok/s': num(m.totalTokenThroughput, 1),
      goodput: m.goodput === null ? null : num(m.goodput),
      'cached tok': m.cachedTokens,
    };
  });
}

export function formatRows(rows: readonly Record<string, unknown>[]): string {
  if (rows.length === 0) return '  (no runs)';
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => (v === null || v === undefined ? '' : String(v));
  const w = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => '  ' + vals.map((v, i) => v.padStart(w[i])).join('  ');
  return [line(cols), line(w.map((n) => '-'.repeat(n))), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n');
}
