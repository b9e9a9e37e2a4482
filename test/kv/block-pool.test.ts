import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlockPool } from '../../lib/kv/block-pool.js';

test('hands out blocks from 0 up and reuses the last freed first', () => {
  const a = new BlockPool(4);
  assert.is(a.alloc(), 0);
  assert.is(a.alloc(), 1);
  a.free(0);
  assert.is(a.alloc(), 0);
  assert.is(a.numUsed, 2);
  assert.is(a.numFree, 2);
});

test('allocMany is all or nothing', () => {
  const a = new BlockPool(3);
  assert.equal(a.allocMany(2), [0, 1]);
  assert.throws(() => a.allocMany(2), /asked for 2 blocks, 1 free/);
  assert.is(a.numFree, 1);
});

test('shared blocks return to the free list with their last owner', () => {
  const a = new BlockPool(2);
  const b = a.alloc();
  a.share(b);
  assert.is(a.refCount(b), 2);
  a.free(b);
  assert.is(a.numFree, 1);
  a.free(b);
  assert.is(a.numFree, 2);
  assert.throws(() => a.free(b), /double free/);
  assert.throws(() => a.share(b), /is free/);
});

test('watermark holds back blocks from admissions only', () => {
  const a = new BlockPool(200, { watermark: 0.01 });
  assert.is(a.watermarkBlocks, 2);
  assert.ok(a.canAllocate(198, true));
  assert.not.ok(a.canAllocate(199, true));
  assert.ok(a.canAllocate(200));
});

test('bad arguments name the argument', () => {
  assert.throws(() => new BlockPool(-1), /numBlocks/);
  assert.throws(() => new BlockPool(4, { watermark: 1 }), /watermark/);
  const a = new BlockPool(4, { name: 'device' });
  assert.throws(() => a.free(9), /device.*out of range/);
  a.allocMany(4);
  assert.throws(() => a.alloc(), /out of blocks/);
});

test.run();
