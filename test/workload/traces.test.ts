import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readAzureTrace, readMooncakeTrace } from '../../lib/workload/traces.js';
import { chainHashes } from '../../lib/workload/hash.js';

const AZURE = '../shared/traces/AzureLLMInferenceTrace_conv.csv';
const MOONCAKE = '../shared/traces/mooncake_conversation_trace.jsonl';
const dir = mkdtempSync(path.join(tmpdir(), 'kvcake-traces-'));
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

test('Azure: arrivals in seconds from the first request, lengths, ids, options', () => {
  const p = file('az.csv', 'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.5000000,374,44\r\n2023-11-16 18:15:48.2500000,396,109\n2023-11-16 18:16:00.0000000,10,1\n\n');
  const reqs = readAzureTrace(p);
  assert.equal(reqs.map((r) => [r.id, r.promptLen, r.maxNewTokens]), [['azure-0', 374, 44], ['azure-1', 396, 109], ['azure-2', 10, 1]]);
  assert.is(reqs[0].arrival, 0);
  assert.ok(Math.abs(reqs[1].arrival - 1.75) < 1e-6);
  assert.ok(Math.abs(reqs[2].arrival - 13.5) < 1e-6);
  const scaled = readAzureTrace(p, { limit: 2, timeScale: 0.5, ttftSlo: 1, tpotSlo: 0.1 });
  assert.is(scaled.length, 2);
  assert.ok(Math.abs(scaled[1].arrival - 0.875) < 1e-6);
  assert.ok(scaled.every((r) => r.ttftSlo === 1 && r.tpotSlo === 0.1 && r.prefix === undefined));
});

test('Azure: crossing midnight and out-of-order rows come out sorted', () => {
  const p = file('az2.csv', 'TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 23:59:59.0,5,5\n2023-11-17 00:00:01.0,6,6\n2023-11-16 23:59:58.0,7,7\n');
  const reqs = readAzureTrace(p);
  assert.equal(reqs.map((r) => [r.promptLen, r.arrival]), [[7, 0], [5, 1], [6, 3]]);
});

test('Azure: malformed lines and missing files name file:line', () => {
  const hdr = 'TIMESTAMP,ContextTokens,GeneratedTokens\n';
  assert.throws(() => readAzureTrace(path.join(dir, 'nope.csv')), /readAzureTrace: trace file not found: .*nope\.csv/);
  assert.throws(() => readAzureTrace(file('b1.csv', 'time,a,b\n')), /b1\.csv:1: header must name TIMESTAMP/);
  assert.throws(() => readAzureTrace(file('b2.csv', hdr + '2023-11-16 18:15:46.5,1,1\n2023-11-16 18:15:47,1\n')), /b2\.csv:3: expected 3 fields, got 2/);
  assert.throws(() => readAzureTrace(file('b3.csv', hdr + 'yesterday,1,1\n')), /b3\.csv:2: bad TIMESTAMP "yesterday"/);
  assert.throws(() => readAzureTrace(file('b4.csv', hdr + '2023-11-16 18:15:46.5,abc,1\n')), /b4\.csv:2: ContextTokens must be an integer >= 1, got "abc"/);
  assert.throws(() => readAzureTrace(file('b5.csv', hdr + '2023-11-16 18:15:46.5,3,0\n')), /b5\.csv:2: GeneratedTokens must be an integer >= 1, got "0"/);
  assert.throws(() => readAzureTrace(file('b6.csv', hdr), { timeScale: 0 }), /timeScale must be > 0, got 0/);
  assert.throws(() => readAzureTrace(file('b7.csv', hdr), { limit: -1 }), /limit must be an integer >= 0, got -1/);
});

test('Mooncake: ms timestamps to seconds, chained chunk hashes over full 512-token blocks', () => {
  const p = file('mc.jsonl', [
    '{"timestamp": 1000, "input_length": 1100, "output_length": 5, "hash_ids": [7, 8, 9]}',
    '{"timestamp": 3500, "input_length": 1024, "output_length": 2, "hash_ids": [7, 8]}',
    '{"timestamp": 4000, "input_length": 600, "output_length": 1, "hash_ids": [1, 2]}',
    '',
  ].join('\n'));
  const reqs = readMooncakeTrace(p);
  assert.equal(reqs.map((r) => [r.id, r.arrival, r.promptLen, r.maxNewTokens]), [['mooncake-0', 0, 1100, 5], ['mooncake-1', 2.5, 1024, 2], ['mooncake-2', 3, 600, 1]]);
  assert.equal(reqs[0].prefix!.chunkHashes, chainHashes(['7', '8']));
  assert.equal(reqs[1].prefix!.chunkHashes, reqs[0].prefix!.chunkHashes);
  assert.is(reqs[2].prefix!.chunkHashes.length, 1);
  assert.not.equal(reqs[2].prefix!.chunkHashes[0], reqs[0].prefix!.chunkHashes[0]);
  assert.ok(reqs.every((r) => r.prefix!.chunkTokens === 512 && r.prefix!.storedChunks === 0));
  const big = readMooncakeTrace(p, { chunkTokens: 1024 });
  assert.equal(big[0].prefix!.chunkHashes, chainHashes(['7,8']));
  assert.equal(big[2].prefix!.chunkHashes, []);
});

test('Mooncake: malformed lines and bad options name file:line and the limit', () => {
  const ok = '{"timestamp": 0, "input_length": 10, "output_length": 1, "hash_ids": [0]}\n';
  assert.throws(() => readMooncakeTrace(path.join(dir, 'none.jsonl')), /readMooncakeTrace: trace file not found/);
  assert.throws(() => readMooncakeTrace(file('m1.jsonl', ok + '{"timestamp": 1,\n')), /m1\.jsonl:2: not valid JSON/);
  assert.throws(() => readMooncakeTrace(file('m2.jsonl', ok + '{"input_length": 1, "output_length": 1, "hash_ids": []}\n')), /m2\.jsonl:2: timestamp must be a number/);
  assert.throws(() => readMooncakeTrace(file('m3.jsonl', '{"timestamp": 0, "input_length": 0, "output_length": 1, "hash_ids": []}\n')), /m3\.jsonl:1: input_length must be an integer >= 1, got 0/);
  assert.throws(() => readMooncakeTrace(file('m4.jsonl', '{"timestamp": 0, "input_length": 2000, "output_length": 1, "hash_ids": [1, 2]}\n')), /m4\.jsonl:1: hash_ids has 2 blocks, fewer than the 3 full blocks/);
  assert.throws(() => readMooncakeTrace(file('m5.jsonl', '[1, 2]\n')), /m5\.jsonl:1: expected a JSON object/);
  assert.throws(() => readMooncakeTrace(file('m6.jsonl', ok), { chunkTokens: 700 }), /chunkTokens must be a positive multiple of 512 .* got 700/);
});

const haveTraces = existsSync(AZURE) && existsSync(MOONCAKE);

// The public traces live beside the checkout, not in it; without them these two check nothing.
if (!haveTraces) console.warn(`traces.test: ${AZURE} or ${MOONCAKE} missing; public-trace tests pass vacuously`);

test('the public Azure conversation trace loads whole, sorted, from 0', () => {
  if (!haveTraces) return;
  const reqs = readAzureTrace(AZURE);
  assert.is(reqs.length, 19366);
  assert.is(reqs[0].arrival, 0);
  assert.is(reqs[0].promptLen, 374);
  assert.is(reqs[0].maxNewTokens, 44);
  for (let i = 1; i < reqs.length; i++) assert.ok(reqs[i].arrival >= reqs[i - 1].arrival);
  // Roughly an hour of traffic.
  const last = reqs[reqs.length - 1].arrival;
  assert.ok(last > 3000 && last < 4000, `last arrival ${last}`);
  assert.is(readAzureTrace(AZURE, { limit: 100 }).length, 100);
});

test('the public Mooncake conversation trace loads whole, with shared prefixes', () => {
  if (!haveTraces) return;
  const reqs = readMooncakeTrace(MOONCAKE);
  assert.is(reqs.length, 12031);
  assert.is(reqs[0].promptLen, 6758);
  assert.is(reqs[0].prefix!.chunkHashes.length, 13);
  // The first requests share block 0 (a common system prompt).
  assert.is(reqs[1].prefix!.chunkHashes[0], reqs[0].prefix!.chunkHashes[0]);
  assert.ok(Math.abs(reqs[reqs.length - 1].arrival - 3536.999) < 1e-9);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
