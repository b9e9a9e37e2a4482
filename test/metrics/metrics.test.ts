import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { percentile, percentiles } from '../../lib/metrics/percentiles.js';
import { MetricsCollector } from '../../lib/metrics/collector.js';
import type { SeqEvent } from '../../lib/contract/events.js';
import type { Request } from '../../lib/contract/request.js';

const close = (a: number, b: number, what = '') => assert.ok(Math.abs(a - b) < 1e-9, `${what} ${a} vs ${b}`);

test('percentiles interpolate linearly between ranks like numpy', () => {
  const xs = [1, 2, 3, 4];
  close(percentile(xs, 50), 2.5);
  close(percentile(xs, 90), 3.7); // numpy.percentile([1,2,3,4], 90) == 3.7
  close(percentile(xs, 0), 1);
  close(percentile(xs, 100), 4);
  const hundred = Array.from({ length: 101 }, (_, i) => i);
  close(percentile(hundred, 99), 99);
  close(percentile(hundred, 90), 90);
  const p = percentiles([10, 0, 5, 20, 15]); // unsorted input
  close(p.mean, 10);
  close(p.median, 10);
  close(p.p90, 18); // rank 3.6 between 15 and 20
  close(p.p99, 19.8);
  const one = percentiles([7]);
  assert.equal(one, { mean: 7, median: 7, p90: 7, p99: 7 });
  const none = percentiles([]);
  assert.ok(Object.values(none).every(Number.isNaN), 'no data is NaN, not zero latency');
  assert.throws(() => percentile(xs, 101), /q must be in \[0, 100\], got 101/);
});

function r(id: string, arrival: number, maxNewTokens: number, slo: Partial<Request> = {}): Request {
  return { id, arrival, promptLen: 100, maxNewTokens, ...slo };
}
function tokens(seq: string, times: number[], finish = true): SeqEvent[] {
  const ev: SeqEvent[] = times.map((at, i) => ({ seq, kind: i === 0 ? 'first-token' : 'token', at }));
  if (finish) ev.push({ seq, kind: 'finished', at: times[times.length - 1] });
  return ev;
}

test('TTFT, TPOT, ITL, E2E as benchmark_serving defines them', () => {
  const m = new MetricsCollector();
  m.addRequest(r('a', 0, 4));
  m.addRequest(r('b', 1, 1));
  m.onEvents(tokens('a', [0.5, 0.6, 0.8, 1.1]));
  m.onEvents(tokens('b', [3]));
  const s = m.summary();
  assert.is(s.requests, 2);
  assert.is(s.completed, 2);
  close(s.duration, 3);
  close(s.ttft.mean, (0.5 + 2) / 2);
  // a: (1.1 - 0.5) / 3 = 0.2; b has one token and no TPOT.
  close(s.tpot.mean, 0.2);
  close(s.tpot.median, 0.2);
  // ITLs pooled: 0.1, 0.2, 0.3.
  close(s.itl.mean, 0.2);
  close(s.itl.median, 0.2);
  close(s.itl.p90, 0.28);
  close(s.e2e.mean, (1.1 + 2) / 2);
  close(s.throughput.requestsPerSec, 2 / 3);
  close(s.throughput.outputTokensPerSec, 5 / 3);
  close(s.throughput.totalTokensPerSec, 205 / 3);
  const rec = m.record('a')!;
  assert.equal(rec.tokenTimes, [0.5, 0.6, 0.8, 1.1]);
  close(rec.finishedAt!, 1.1);
  assert.is(m.record('zzz'), undefined);
});

test('SLO attainment: both SLOs met; no SLO counts as met; unfinished and rejected miss', () => {
  const m = new MetricsCollector();
  m.addRequest(r('ok', 0, 3, { ttftSlo: 1, tpotSlo: 0.1 }));
  m.addRequest(r('slowFirst', 0, 3, { ttftSlo: 1, tpotSlo: 0.1 }));
  m.addRequest(r('slowDecode', 0, 3, { ttftSlo: 1, tpotSlo: 0.1 }));
  m.addRequest(r('noSlo', 0, 2));
  m.addRequest(r('rejected', 0, 2, { ttftSlo: 1 }));
  m.addRequest(r('unfinished', 0, 5, { tpotSlo: 0.1 }));
  m.onEvents(tokens('ok', [0.5, 0.55, 0.6]));
  m.onEvents(tokens('slowFirst', [2, 2.05, 2.1]));
  m.onEvents(tokens('slowDecode', [0.5, 1, 1.5]));
  m.onEvents(tokens('noSlo', [9, 10]));
  m.onEvents([{ seq: 'rejected', kind: 'rejected', at: 0 }]);
  m.onEvents(tokens('unfinished', [0.2, 0.25], false));
  const s = m.summary();
  assert.is(s.requests, 6);
  assert.is(s.completed, 4);
  close(s.sloAttainment, 2 / 6); // ok, noSlo
  assert.is(s.ttftViolations, 2); // slowFirst, rejected (never got a first token)
  assert.is(s.tpotViolations, 2); // slowDecode, unfinished
  close(s.duration, 10);
  close(s.goodput, 2 / 10);
  // Latency statistics cover completed requests only.
  close(s.ttft.mean, (0.5 + 2 + 0.5 + 9) / 4);
});

test('a request preempted and re-prefilled keeps its first token; later tokens append', () => {
  const m = new MetricsCollector();
  m.addRequest(r('p', 0, 3));
  m.onEvents([
    { seq: 'p', kind: 'first-token', at: 1 },
    { seq: 'p', kind: 'preempted', at: 1.5 },
    { seq: 'p', kind: 'first-token', at: 3 },
    { seq: 'p', kind: 'token', at: 3.5 },
    { seq: 'p', kind: 'finished', at: 3.5 },
  ]);
  const s = m.summary();
  close(s.ttft.mean, 1);
  close(s.tpot.mean, 1.25);
  close(s.itl.p99, 2 - 0.01 * 1.5);
  assert.is(m.record('p')!.preemptions, 1);
});

test('empty collector: zeros and NaNs, no throw', () => {
  const s = new MetricsCollector().summary();
  assert.is(s.requests, 0);
  assert.is(s.duration, 0);
  assert.is(s.goodput, 0);
  assert.ok(Number.isNaN(s.ttft.mean) && Number.isNaN(s.sloAttainment));
});

test('bad input is a clear error', () => {
  const m = new MetricsCollector();
  m.addRequest(r('a', 0, 2));
  assert.throws(() => m.addRequest(r('a', 1, 2)), /request a already added/);
  assert.throws(() => m.addRequest(r('b', NaN, 2)), /arrival of b must be finite, got NaN/);
  assert.throws(() => m.onEvents([{ seq: 'x', kind: 'token', at: 0 }]), /event 'token' for unknown request x/);
  assert.throws(() => m.onEvents([{ seq: 'a', kind: 'token', at: 0 }]), /'token' before 'first-token' for request a/);
  assert.throws(() => m.onEvents([{ seq: 'a', kind: 'bogus' as 'token', at: 0 }]), /unknown event kind "bogus"/);
});

test.run();
