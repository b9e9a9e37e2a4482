// Many concurrent streaming clients on loopback against the CPU dummy model: no error but
// the documented 429 (queue full), every block back at the end, RSS flat. `npm test` runs a
// short variant; `npm run test:load` (KVCAKE_LOAD_FULL=1) runs 200 clients for a minute.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { serveTiny, until } from './util.js';

const FULL = process.env.KVCAKE_LOAD_FULL === '1';
const CLIENTS = FULL ? 200 : 40;
const SECONDS = FULL ? 60 : 6;

test(`load: ${CLIENTS} streaming clients for ${SECONDS} s`, async () => {
  const ts = await serveTiny({ engine: { maxRunning: 64, maxWaiting: 96 } });
  const counts = { ok: 0, busy: 0, tokens: 0 };
  const errors: string[] = [];
  const rss: number[] = [];
  const end = Date.now() + SECONDS * 1000;
  const sampler = setInterval(() => rss.push(process.memoryUsage().rss), 250);
  async function client(c: number): Promise<void> {
    let i = 0;
    while (Date.now() < end) {
      const maxTokens = 4 + ((c * 7 + i) % 24);
      const prompt = Array.from({ length: 8 + ((c + i * 3) % 40) }, (_, k) => (c * 31 + k) % 256);
      i++;
      try {
        const res = await fetch(`${ts.url}/v1/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ prompt, max_tokens: maxTokens, ignore_eos: true, stream: true, stream_options: { include_usage: true }, temperature: 0 }),
        });
        if (res.status === 429) {
          counts.busy++;
          await res.text();
          // Retry-After says 1 s; a load test that waited that long would idle the server.
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        const text = await res.text();
        if (res.status !== 200) {
          errors.push(`HTTP ${res.status}: ${text.slice(0, 200)}`);
          continue;
        }
        const usage = /"completion_tokens":(\d+)/.exec(text);
        if (!text.trimEnd().endsWith('data: [DONE]') || text.includes('"error"')) errors.push(`bad stream: ${text.slice(-200)}`);
        else if (Number(usage?.[1]) !== maxTokens) errors.push(`expected ${maxTokens} tokens, usage says ${usage?.[1]}`);
        else {
          counts.ok++;
          counts.tokens += maxTokens;
        }
      } catch (err) {
        errors.push(`client ${c}: ${(err as Error).message}`);
      }
    }
  }
  try {
    await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
    clearInterval(sampler);
    await until(() => ts.engine.stats().running === 0 && ts.engine.stats().waiting === 0, 'the engine to drain');
    const st = ts.engine.stats();
    console.log(`  load: ${counts.ok} streams, ${counts.tokens} tokens, ${counts.busy} x 429 in ${SECONDS} s; RSS ${(rss[Math.floor(rss.length / 3)] / 2 ** 20).toFixed(0)} -> ${(rss[rss.length - 1] / 2 ** 20).toFixed(0)} MiB`);
    assert.equal(errors.slice(0, 5), [], `${errors.length} errors`);
    assert.ok(counts.ok > CLIENTS, `only ${counts.ok} streams completed`);
    assert.is(st.kv.device.usedBlocks, 0, 'device blocks still in use');
    assert.is(st.kv.host.usedBlocks, 0, 'host blocks still in use');
    // RSS flat: after the first third (allocator and JIT warm-up), growth stays under 128 MiB.
    const warm = rss[Math.floor(rss.length / 3)];
    const last = rss[rss.length - 1];
    assert.ok(last - warm < 128 * 2 ** 20, `RSS grew from ${warm} to ${last}`);
  } finally {
    clearInterval(sampler);
    await ts.close();
  }
});

test.run();
