// KV usage and queue lengths over a run, read from the server's Prometheus /metrics.
// kvcake exports blocks per tier; vLLM exports the device tier's usage as a fraction
// (vllm:kv_cache_usage_perc, formerly vllm:gpu_cache_usage_perc) and its queue gauges.

export interface KvSample {
  /** Seconds since the run started. */
  t: number;
  /** Fraction of each tier's KV blocks in use; null when the server does not export it. */
  device: number | null;
  host: number | null;
  waiting: number | null;
  running: number | null;
}

/** `name{labels} value` lines of the Prometheus text format, summed over label sets that match. */
export function parsePrometheus(text: string): Map<string, { labels: Record<string, string>; value: number }[]> {
  const out = new Map<string, { labels: Record<string, string>; value: number }[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    if (m[3]) for (const kv of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[kv[1]] = kv[2];
    const value = Number(m[4]);
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1])!.push({ labels, value });
  }
  return out;
}

export function kvSample(text: string, t: number): KvSample {
  const m = parsePrometheus(text);
  const pick = (name: string, labels: Record<string, string> = {}): number | null => {
    const rows = m.get(name)?.filter((r) => Object.entries(labels).every(([k, v]) => r.labels[k] === v));
    return rows && rows.length > 0 ? rows.reduce((a, r) => a + r.value, 0) : null;
  };
  const ratio = (tier: string) => {
    const used = pick('kvcake_kv_blocks_used', { tier });
    const total = pick('kvcake_kv_blocks_total', { tier });
    return used !== null && total !== null && total > 0 ? used / total : null;
  };
  return {
    t,
    device: ratio('device') ?? pick('vllm:kv_cache_usage_perc') ?? pick('vllm:gpu_cache_usage_perc'),
    host: ratio('host') ?? pick('vllm:cpu_cache_usage_perc'),
    waiting: pick('kvcake_requests_waiting') ?? pick('vllm:num_requests_waiting'),
    running: pick('kvcake_requests_running') ?? pick('vllm:num_requests_running'),
  };
}

/** Polls `${url}/metrics` every intervalMs until stop(); a server without /metrics gives no samples. */
export function pollMetrics(url: string, intervalMs: number, clock: () => number, apiKey?: string): { stop(): Promise<KvSample[]> } {
  const samples: KvSample[] = [];
  let stopped = false;
  let failures = 0;
  const loop = (async () => {
    while (!stopped && failures < 3) {
      try {
        const res = await fetch(`${url.replace(/\/+$/, '')}/metrics`, { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {}, signal: AbortSignal.timeout(5000) });
        if (res.ok) samples.push(kvSample(await res.text(), clock()));
        else failures++;
      } catch {
        failures++;
      }
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      return samples;
    },
  };
}
