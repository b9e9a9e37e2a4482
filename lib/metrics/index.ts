// Serving metrics: TTFT, TPOT, ITL, E2E percentiles, SLO attainment, goodput, throughput.
export { percentile, percentiles, type Percentiles } from './percentiles.js';
export { MetricsCollector, type ServingMetrics, type RequestRecord } from './collector.js';
