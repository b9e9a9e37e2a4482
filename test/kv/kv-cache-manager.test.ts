import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { KVCacheManager } from '../../lib/kv/kv-cache-manager.js';

const mk = () => new KVCacheManager({ numLayers: 3, blockSize: 4, deviceBlocks: 10, hostBlocks: 10 });

test('each layer grows in its own tier', () => {
  const m = mk();
  const kv = m.create('a', ['device', 'host', 'device']);
  assert.equal(m.growthNeeded(kv, 5), { device: 4, host: 2 });
  assert.ok(m.allocateSlots(kv, 5));
  assert.equal(kv.tables.map((t) => t.length), [2, 2, 2]);
  assert.is(m.device.numUsed, 4);
  assert.is(m.host.numUsed, 2);
  // Within the last block: no new blocks.
  assert.ok(m.allocateSlots(kv, 8));
  assert.is(m.device.numUsed, 4);
  const ch = m.drain();
  assert.equal(ch.tables.map((c) => c.kind === 'append' && [c.layer, c.tier, c.blocks.length]), [[0, 'device', 2], [1, 'host', 2], [2, 'device', 2]]);
});

test('grow is all or nothing across tiers', () => {
  const m = mk();
  const kv = m.create('a', ['device', 'device', 'device']);
  assert.not.ok(m.allocateSlots(kv, 16)); // 12 device blocks > 10
  assert.is(m.device.numUsed, 0);
  assert.is(kv.tokens, 0);
});

test('moveLayer pairs source and destination blocks; the source is released later', () => {
  const m = mk();
  const kv = m.create('a', ['device', 'host', 'device']);
  m.allocateSlots(kv, 8);
  const src = kv.tables[1].slice();
  const mv = m.moveLayer(kv, 1, 'device')!;
  assert.is(kv.tiers[1], 'device');
  assert.equal(Array.from(mv.pairs), [src[0], kv.tables[1][0], src[1], kv.tables[1][1]]);
  assert.is(m.host.numUsed, 2);
  m.release('a', 1, mv.from, mv.source);
  assert.is(m.host.numUsed, 0);
  assert.equal(m.drain().tables.at(-1), { kind: 'move', seq: 'a', layer: 1, tier: 'device', blocks: kv.tables[1] });
  m.releaseAll(m.drop('a')!);
  assert.is(m.device.numUsed, 0);
  assert.equal(m.drain().tables, [{ kind: 'drop', seq: 'a' }]);
  assert.throws(() => m.moveLayer(m.create('b', ['device', 'device', 'device']), 0, 'device'), /already on device/);
});

test('released blocks are recorded by value: emptying the array afterwards keeps them', () => {
  const m = mk();
  const kv = m.create('a', ['device', 'device', 'host']);
  assert.ok(m.allocateSlots(kv, 8));
  m.drain();
  const table = kv.tables[0];
  const ids = table.slice();
  m.release('a', 0, 'device', table);
  table.length = 0;
  assert.equal(m.drain().freed, [{ seq: 'a', layer: 0, tier: 'device', blocks: ids }]);
});

test('staging sets grow all or nothing, are recorded as staged, and come back whole', () => {
  const m = mk();
  const kv = m.create('a', ['device', 'host', 'host']);
  assert.is(m.stagingNeeded(kv, 2, 3), 6);
  assert.ok(m.allocStaging(kv, 2, 3));
  assert.ok(m.allocStaging(kv, 2, 2));
  assert.is(m.stagingNeeded(kv, 2, 4), 2);
  assert.not.ok(m.allocStaging(kv, 2, 8));
  assert.equal(kv.staging.map((s) => s.length), [3, 3]);
  const d = m.drain();
  assert.equal(d.staged.map((s) => [s.seq, s.layer, s.tier, s.blocks.length]), [['a', -1, 'device', 3], ['a', -1, 'device', 3]]);
  const blocks = m.takeStaging(kv);
  assert.is(blocks.length, 6);
  assert.equal(kv.staging, []);
  m.release('a', -1, 'device', blocks);
  assert.is(m.device.numUsed, 0);
});

test('landing blocks come from the host pool, or not at all', () => {
  const m = mk();
  assert.is(m.allocLanding('a', 0, 11), null);
  const b = m.allocLanding('a', 2, 4)!;
  assert.is(b.length, 4);
  assert.equal(m.drain().landing, [{ tier: 'host', seq: 'a', layer: 2, blocks: b }]);
});

test('errors name the argument', () => {
  const m = mk();
  assert.throws(() => m.create('a', ['device']), /tiers must have 3/);
  m.create('a', ['device', 'device', 'device']);
  assert.throws(() => m.create('a', ['device', 'device', 'device']), /already has block tables/);
  assert.throws(() => new KVCacheManager({ numLayers: 0, blockSize: 4, deviceBlocks: 1, hostBlocks: 1 }), /numLayers/);
  assert.throws(() => new KVCacheManager({ numLayers: 1, blockSize: 0, deviceBlocks: 1, hostBlocks: 1 }), /blockSize/);
});

test.run();
