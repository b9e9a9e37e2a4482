// `kvcake bench-serve --url URL`: the serving benchmark against any OpenAI-compatible
// server (kvcake, vLLM, SGLang, llama.cpp's server: anything that takes token-id prompts on
// /v1/completions and streams SSE), and `kvcake report` to draw several runs in one page.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command, Option } from 'commander';
import cliProgress from 'cli-progress';
import { summaryRows, formatRows } from '../serving-bench/summary.js';
import { buildWorkload, type TokenRange, type WorkloadSpec } from '../serving-bench/workload.js';
import { runBenchmark, type RunResult } from '../serving-bench/run.js';
import { renderReport, reportRunsFromResults } from '../serving-bench/report.js';
import type { Slos } from '../serving-bench/metrics.js';
import { parseGoodput, parseInteger, parseLength, parsePositive, parseRates, parseSharedPrefix, parseTokenRange, parseTrace } from './args.js';

interface BenchFlags {
  url: string;
  model?: string;
  apiKey?: string;
  label?: string;
  rate: number[];
  numPrompts: number;
  arrival: 'poisson' | 'gamma';
  cv?: number;
  inputLen: number | [number, number];
  outputLen: number | [number, number];
  sharedPrefix?: { groups: number; tokens: number };
  trace?: { kind: 'azure' | 'mooncake'; path: string };
  timeScale: number;
  maxInputLen?: number;
  maxOutputLen?: number;
  tokenRange?: TokenRange;
  goodput?: Slos;
  maxConcurrency?: number;
  ignoreEos: boolean;
  seed: number;
  metricsInterval: number;
  timeout: number;
  out: string;
  report?: string;
  progress: boolean;
}

/** The file a run set is saved as: BenchFile, read back by `kvcake report`. */
export interface BenchFile {
  tool: 'kvcake bench-serve';
  date: string;
  url: string;
  model: string;
  label: string;
  workload: WorkloadSpec;
  tokenRange: TokenRange;
  slos: Slos;
  runs: RunResult[];
}

async function discoverModel(url: string, apiKey?: string): Promise<{ id: string; vocab?: number; maxLen?: number }> {
  let res: Response;
  try {
    res = await fetch(`${url.replace(/\/+$/, '')}/v1/models`, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {}, signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    throw new Error(`--url ${url}: cannot reach the server: ${(err as Error).message}`);
  }
  if (!res.ok) throw new Error(`--url ${url}: GET /v1/models answered HTTP ${res.status}${res.status === 401 ? ' (pass --api-key)' : ''}`);
  const j = (await res.json()) as { data?: { id?: string; vocab_size?: number; max_model_len?: number }[] };
  const m = j.data?.[0];
  if (!m?.id) throw new Error(`--url ${url}: /v1/models lists no model; pass --model`);
  return { id: m.id, vocab: m.vocab_size, maxLen: m.max_model_len };
}

export function benchServeCommand(): Command {
  return new Command('bench-serve')
    .description('Benchmark an OpenAI-compatible server as vLLM\'s benchmark_serving does (TTFT, TPOT, ITL, E2E, throughput, goodput), with a JSON record and an HTML report.')
    .requiredOption('--url <url>', 'base URL of the server, e.g. http://127.0.0.1:8000')
    .option('--model <id>', 'model id to send (default: the first of /v1/models)')
    .option('--api-key <key>', 'Bearer key (default: $KVCAKE_API_KEY or $OPENAI_API_KEY)')
    .option('--label <name>', 'name of this server or policy in tables and the report (default: the model id)')
    .addOption(new Option('--rate <list>', 'request rates, req/s, comma-separated; inf sends all at once').argParser(parseRates).default([1], '1'))
    .addOption(new Option('--num-prompts <n>', 'requests per rate').argParser(parseInteger(1)).default(100))
    .addOption(new Option('--arrival <dist>', 'inter-arrival distribution').choices(['poisson', 'gamma']).default('poisson'))
    .addOption(new Option('--cv <x>', 'coefficient of variation of gamma gaps (1 = Poisson, > 1 burstier)').argParser(parsePositive))
    .addOption(new Option('--input-len <n|min:max>', 'prompt tokens, fixed or uniform in a range').argParser(parseLength).default(256))
    .addOption(new Option('--output-len <n|min:max>', 'output tokens, fixed or uniform in a range').argParser(parseLength).default(64))
    .addOption(new Option('--shared-prefix <groups:tokens>', 'each request starts with one of GROUPS shared prefixes of TOKENS tokens').argParser(parseSharedPrefix))
    .addOption(new Option('--trace <kind:path>', 'replay a trace instead: azure:PATH (CSV) or mooncake:PATH (JSONL); --rate is then ignored').argParser(parseTrace))
    .addOption(new Option('--time-scale <x>', 'multiply trace arrival times (0.5 = twice the rate)').argParser(parsePositive).default(1))
    .addOption(new Option('--max-input-len <n>', 'cap trace prompts at this many tokens').argParser(parseInteger(1)))
    .addOption(new Option('--max-output-len <n>', 'cap trace outputs at this many tokens').argParser(parseInteger(1)))
    .addOption(new Option('--token-range <lo:hi>', 'prompt token ids are drawn from [LO, HI) (default: [0, vocab_size) when the server reports it, else [100, 30000))').argParser(parseTokenRange))
    .addOption(new Option('--goodput <slos>', 'SLOs for goodput, vLLM\'s form: ttft:MS,tpot:MS,e2el:MS').argParser(parseGoodput))
    .addOption(new Option('--max-concurrency <n>', 'requests in flight at most (default: no cap)').argParser(parseInteger(1)))
    .option('--no-ignore-eos', 'do not send vLLM\'s ignore_eos (servers that reject it; outputs may end early)')
    .addOption(new Option('--seed <n>', 'workload seed').argParser(parseInteger(0)).default(0))
    .addOption(new Option('--metrics-interval <ms>', 'poll /metrics for KV usage this often; 0 = never').argParser(parseInteger(0)).default(250))
    .addOption(new Option('--timeout <s>', 'abandon a request after this many seconds').argParser(parsePositive).default(600))
    .option('--out <dir>', 'directory of the JSON record', 'bench/results')
    .option('--report <file>', 'HTML report path (default: <out>/serve-<label>.html)')
    .option('--no-progress', 'no progress bar')
    .action(async (f: BenchFlags) => {
      await benchServe(f);
    });
}

async function benchServe(f: BenchFlags): Promise<void> {
  const apiKey = f.apiKey ?? process.env.KVCAKE_API_KEY ?? process.env.OPENAI_API_KEY;
  const found = f.model ? null : await discoverModel(f.url, apiKey);
  const model = f.model ?? found!.id;
  const label = f.label ?? model;
  const tokenRange = f.tokenRange ?? (found?.vocab ? { lo: 0, hi: found.vocab } : { lo: 100, hi: 30000 });
  const slos = f.goodput ?? {};
  const specs: { rate: number; spec: WorkloadSpec }[] = f.trace
    ? [{ rate: NaN, spec: { kind: f.trace.kind, path: f.trace.path, limit: f.numPrompts, timeScale: f.timeScale, maxInputLen: f.maxInputLen, maxOutputLen: f.maxOutputLen, seed: f.seed } }]
    : f.rate.map((rate) => ({
        rate,
        spec: { kind: 'synthetic', n: f.numPrompts, rate, arrival: f.arrival, cv: f.cv, inputLen: f.inputLen, outputLen: f.outputLen, sharedPrefix: f.sharedPrefix, seed: f.seed },
      }));
  console.log(`kvcake bench-serve: ${f.url}, model ${model}, ${specs.length} point(s) of ${f.numPrompts} requests, token ids in [${tokenRange.lo}, ${tokenRange.hi})`);
  const runs: RunResult[] = [];
  for (const { rate, spec } of specs) {
    const requests = buildWorkload(spec, tokenRange, { ttftSlo: slos.ttft, tpotSlo: slos.tpot });
    const bar = f.progress
      ? new cliProgress.SingleBar({ format: `  ${Number.isNaN(rate) ? 'trace' : `rate ${rate}`} [{bar}] {value}/{total} done, {failed} failed, {duration}s`, stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic)
      : null;
    bar?.start(requests.length, 0, { failed: 0 });
    const r = await runBenchmark({
      url: f.url,
      model,
      apiKey,
      ignoreEos: f.ignoreEos,
      timeoutSeconds: f.timeout,
      requests,
      label,
      rate,
      maxConcurrency: f.maxConcurrency,
      slos,
      metricsIntervalMs: f.metricsInterval,
      onProgress: (done, _total, failed) => bar?.update(done, { failed }),
    });
    bar?.stop();
    runs.push(r);
  }
  console.log(`\n${formatRows(summaryRows(runs))}\n`);
  for (const r of runs) {
    const kinds = Object.entries(r.metrics.failures);
    if (kinds.length > 0) console.log(`  ${r.label} @ ${r.rate}: failed ${kinds.map(([k, n]) => `${n} x ${k}`).join(', ')}`);
  }
  mkdirSync(f.out, { recursive: true });
  const safe = label.replace(/[^a-zA-Z0-9._+-]+/g, '_');
  const file: BenchFile = { tool: 'kvcake bench-serve', date: new Date().toISOString(), url: f.url, model, label, workload: specs[0].spec, tokenRange, slos, runs };
  const jsonPath = path.join(f.out, `serve-${safe}.json`);
  writeFileSync(jsonPath, JSON.stringify(file, null, 1));
  const reportPath = f.report ?? path.join(f.out, `serve-${safe}.html`);
  writeFileSync(reportPath, renderReport(reportRunsFromResults(runs), { title: `Serving benchmark: ${label}`, notes: [`${f.url}, model ${model}`, describeWorkload(f)] }));
  console.log(`  JSON: ${jsonPath}\n  report: ${reportPath}`);
}

function describeWorkload(f: BenchFlags): string {
  if (f.trace) return `trace ${f.trace.kind} ${f.trace.path}, time scale ${f.timeScale}, ${f.numPrompts} requests`;
  const len = (x: number | [number, number]) => (typeof x === 'number' ? String(x) : `${x[0]}-${x[1]}`);
  return `${f.numPrompts} requests per rate, ${f.arrival} arrivals, input ${len(f.inputLen)}, output ${len(f.outputLen)} tokens${f.sharedPrefix ? `, ${f.sharedPrefix.groups} shared prefixes of ${f.sharedPrefix.tokens} tokens` : ''}`;
}

export function reportCommand(): Command {
  return new Command('report')
    .description('Draw the runs of several bench-serve JSON records (e.g. one per policy, or kvcake beside vLLM) in one HTML report.')
    .argument('<json...>', 'bench-serve JSON files')
    .requiredOption('-o, --output <file>', 'HTML file to write')
    .option('--title <text>', 'report title', 'kvcake serving benchmark')
    .action((files: string[], o: { output: string; title: string }) => {
      const runs = files.flatMap((p) => {
        let j: BenchFile;
        try {
          j = JSON.parse(readFileSync(p, 'utf8')) as BenchFile;
        } catch (err) {
          throw new Error(`${p}: not a readable JSON file: ${(err as Error).message}`);
        }
        if (j.tool !== 'kvcake bench-serve' || !Array.isArray(j.runs)) throw new Error(`${p}: not a kvcake bench-serve record`);
        return j.runs;
      });
      writeFileSync(o.output, renderReport(reportRunsFromResults(runs), { title: o.title, notes: files.map((p) => `from ${p}`) }));
      console.log(`report: ${o.output} (${runs.length} runs)`);
    });
}
