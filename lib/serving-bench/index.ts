// The serving benchmark: workloads as token ids, a streaming OpenAI client timed as vLLM's
// benchmark_serving times it, runs with KV polling, and the HTML report (kvcake/serving-bench).
export { buildWorkload, type BenchRequest, type WorkloadSpec, type TokenRange } from './workload.js';
export { sendRequest, type RequestOutcome, type ClientOptions } from './client.js';
export { runMetrics, stat, tpotOf, type RunMetrics, type Stat, type Slos } from './metrics.js';
export { parsePrometheus, kvSample, pollMetrics, type KvSample } from './poll.js';
export { runBenchmark, type RunOptions, type RunResult } from './run.js';
export { renderReport, reportRunsFromResults, reportRunFromSimulation, type ReportRun, type ReportOptions } from './report.js';
export { simulateForReport } from './sim.js';
