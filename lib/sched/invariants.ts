// Checks the scheduler's own bookkeeping after a step (tests turn it on with `check`): every
// block in use is owned exactly once, by a table or staging set of a live or dropped hold (one
// with transfers in flight, or saves owed), by a transfer that gives it back on completion, or
// by a pin that holds a moved layer's old block for a save, and the pools' counts agree. Whether the
// plans are right about the bytes is the ledger executor's job (test/sched/ledger.ts).
import type { TierName } from '../contract/plan.js';
import type { SchedCore } from './core.js';
import type { Hold } from './request-state.js';

export function checkBlockOwnership(core: SchedCore, owing: Iterable<Hold> = []): void {
  const kv = core.kv;
  const marks = { device: new Uint8Array(kv.device.numBlocks), host: new Uint8Array(kv.host.numBlocks) };
  const count = { device: 0, host: 0 };
  const own = (tier: TierName, b: number, who: string) => {
    if (marks[tier][b]) throw new Error(`invariant: ${tier} block ${b} owned twice (${who})`);
    marks[tier][b] = 1;
    count[tier]++;
  };
  const holds = new Set<Hold>();
  for (const s of core.running) if (s.hold) holds.add(s.hold);
  for (const s of core.queue) if (s.hold) holds.add(s.hold);
  for (const h of owing) holds.add(h);
  for (const d of core.transfers.deferredBlocks()) own(d.tier, d.block, `a pin of ${d.seq}`);
  for (const r of core.transfers.values()) {
    holds.add(r.hold);
    for (const rel of r.release) for (const b of rel.blocks) own(rel.tier, b, `transfer ${r.t.id} of ${r.seq.id}`);
  }
  for (const h of holds) {
    for (let l = 0; l < core.numLayers; l++) for (const b of h.kv.tables[l]) own(h.kv.tiers[l], b, `${h.kv.seq} layer ${l}`);
    for (const set of h.kv.staging) for (const b of set) own('device', b, `${h.kv.seq} staging`);
  }
  for (const tier of ['device', 'host'] as const) {
    const pool = kv.pool(tier);
    if (pool.numUsed > pool.numBlocks) throw new Error(`invariant: ${tier} pool over capacity`);
    if (count[tier] !== pool.numUsed) throw new Error(`invariant: ${tier} pool has ${pool.numUsed} blocks in use, ${count[tier]} owned`);
  }
}
