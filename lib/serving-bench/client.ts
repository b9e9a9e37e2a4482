// One streaming request to an OpenAI-compatible /v1/completions, timed the way vLLM's
// benchmark_serving times it: TTFT at the first data event carrying a choice, one
// inter-token gap per later one, E2E at the end of the stream, and the output length
// from the server's usage when it reports it.

export interface RequestOutcome {
  id: string;
  ok: boolean;
  /** HTTP status (0: no response). */
  status: number;
  error?: string;
  /** Seconds since the run started. */
  sentAt: number;
  promptLen: number;
  outputLen: number;
  /** Tokens the server says it generated (usage.completion_tokens), else the token events seen. */
  outputTokens: number;
  cachedTokens: number | null;
  ttft: number;
  /** Gaps between consecutive token events, seconds. */
  itl: number[];
  e2e: number;
}

export interface ClientOptions {
  /** Base URL of the server (http://host:port). */
  url: string;
  model: string;
  apiKey?: string;
  /** Send vLLM's ignore_eos so every request makes exactly outputLen tokens (default true). */
  ignoreEos?: boolean;
  /** Abandon a request after this many seconds (default 600). */
  timeoutSeconds?: number;
}

export async function sendRequest(
  o: ClientOptions,
  req: { id: string; prompt: number[]; outputLen: number; ttftSlo?: number; tpotSlo?: number },
  clock: () => number,
  signal?: AbortSignal,
): Promise<RequestOutcome> {
  const body: Record<string, unknown> = {
    model: o.model,
    prompt: req.prompt,
    max_tokens: req.outputLen,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  };
  if (o.ignoreEos ?? true) body.ignore_eos = true;
  const sentAt = clock();
  const out: RequestOutcome = { id: req.id, ok: false, status: 0, sentAt, promptLen: req.prompt.length, outputLen: req.outputLen, outputTokens: 0, cachedTokens: null, ttft: NaN, itl: [], e2e: NaN };
  const timeout = AbortSignal.timeout((o.timeoutSeconds ?? 600) * 1000);
  const sig = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let last = NaN;
  let events = 0;
  try {
    const res = await fetch(`${o.url.replace(/\/+$/, '')}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...(o.apiKey ? { authorization: `Bearer ${o.apiKey}` } : {}) },
      body: JSON.stringify(body),
      signal: sig,
    });
    out.status = res.status;
    if (res.status !== 200 || !res.body) {
      const text = await res.text().catch(() => '');
      out.error = `HTTP ${res.status}: ${errorMessage(text)}`;
      return out;
    }
    const decoder = new TextDecoder();
    let buf = '';
    let done = false;
    for await (const bytes of res.body as AsyncIterable<Uint8Array>) {
      const now = clock();
      buf += decoder.decode(bytes, { stream: true });
      let cut: number;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        for (const line of event.split('\n')) {
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]') {
            done = true;
            continue;
          }
          let msg: { choices?: { text?: string; finish_reason?: string | null }[]; usage?: { completion_tokens?: number; prompt_tokens_details?: { cached_tokens?: number } } | null; error?: { message?: string } };
          try {
            msg = JSON.parse(data);
          } catch {
            throw new Error(`the server sent an event that is not JSON: ${data.slice(0, 80)}`);
          }
          if (msg.error) throw new Error(`error event: ${msg.error.message ?? JSON.stringify(msg.error)}`);
          const ch = msg.choices?.[0];
          // A choice is a token, except a closing event that only carries the finish reason.
          if (ch && (ch.finish_reason == null || (ch.text ?? '') !== '')) {
            events++;
            if (Number.isNaN(out.ttft)) out.ttft = now - sentAt;
            else out.itl.push(now - last);
            last = now;
          }
          if (msg.usage) {
            if (typeof msg.usage.completion_tokens === 'number') out.outputTokens = msg.usage.completion_tokens;
            const c = msg.usage.prompt_tokens_details?.cached_tokens;
            if (typeof c === 'number') out.cachedTokens = c;
          }
        }
      }
    }
    out.e2e = clock() - sentAt;
    if (!done) throw new Error('the stream ended without data: [DONE]');
    if (out.outputTokens === 0) out.outputTokens = events;
    if (events === 0) throw new Error('the stream had no tokens');
    out.ok = true;
  } catch (err) {
    out.error = (err as Error).name === 'TimeoutError' ? `timed out after ${o.timeoutSeconds ?? 600} s` : (err as Error).message;
  }
  return out;
}

function errorMessage(text: string): string {
  try {
    const j = JSON.parse(text) as { error?: { message?: string } | string; message?: string };
    if (typeof j.error === 'string') return j.error;
    return j.error?.message ?? j.message ?? text.slice(0, 200);
  } catch {
    return text.slice(0, 200);
  }
}
