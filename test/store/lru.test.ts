// The byte LRU behind the local tiers, and the bandwidth meter behind readBandwidth().
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BandwidthMeter, ByteLru } from '../../lib/store/index.js';

test('LRU by bytes: evicts least recently used until the new entry fits; get refreshes', () => {
  const l = new ByteLru<string>(100);
  assert.equal(l.put('a', 'A', 40), []);
  assert.equal(l.put('b', 'B', 40), []);
  l.get('a');
  assert.equal(l.put('c', 'C', 40)!.map((e) => e.key), ['b'], 'b was least recently used');
  assert.equal(l.keys(), ['a', 'c']);
  assert.is(l.bytes, 80);
  assert.equal(l.put('d', 'D', 100)!.map((e) => e.key), ['a', 'c'], 'a full-capacity entry evicts everything');
  assert.is(l.put('e', 'E', 101), undefined, 'larger than the capacity: refused');
  assert.equal(l.keys(), ['d']);
});

test('pinned entries are never evicted; an insert that cannot fit beside them is refused without evicting', () => {
  const l = new ByteLru<number>(100);
  l.put('a', 1, 50);
  l.put('b', 2, 30);
  assert.ok(l.pin('a'));
  assert.is(l.put('c', 3, 60), undefined, 'does not fit beside the pinned 50 bytes');
  assert.equal(l.put('c', 3, 50)!.map((e) => e.key), ['b'], 'skips the pinned LRU entry');
  assert.equal(l.keys(), ['a', 'c']);
  l.pin('c');
  assert.is(l.put('d', 4, 10), undefined, 'full, and everything is pinned');
  assert.equal(l.keys(), ['a', 'c'], 'nothing evicted by a refused insert');
  l.unpin('a');
  assert.equal(l.put('d', 4, 10)!.map((e) => e.key), ['a']);
  l.pin('c');
  l.unpin('c');
  assert.ok(l.isPinned('c'), 'pins are counted');
  l.unpin('c');
  assert.not.ok(l.isPinned('c'));
});

test('reservations count against the capacity until they land or are given back', () => {
  const l = new ByteLru<number>(100);
  l.put('a', 1, 40);
  assert.equal(l.reserve(50), []);
  assert.is(l.reserve(20)!.length, 1, 'the reservation keeps its room: a goes');
  assert.is(l.reserve(40), undefined, '70 reserved: 40 more cannot fit');
  l.unreserve(20);
  l.insertReserved('b', 2, 50);
  assert.is(l.reserved, 0);
  assert.is(l.bytes, 50);
  assert.ok(l.delete('b') === 2);
  assert.is(l.bytes, 0);
});

test('bandwidth meter: bytes over busy time; concurrent reads count as one busy interval; idle time is not counted', () => {
  let t = 0;
  const m = new BandwidthMeter({ now: () => t, halfLifeSeconds: 1000 });
  assert.is(m.estimate(), undefined);
  m.begin();
  t = 1;
  m.end(100);
  assert.ok(Math.abs(m.estimate()! - 100) < 1);
  t = 50; // idle
  m.begin();
  m.begin();
  t = 51;
  m.end(100);
  m.end(100);
  assert.ok(Math.abs(m.estimate()! - 150) < 1, `got ${m.estimate()}`);
  m.begin();
  t = 52;
  m.end(0); // a failed read adds busy time, no bytes
  assert.ok(Math.abs(m.estimate()! - 100) < 1, `got ${m.estimate()}`);
  // A read in flight does not drag the estimate down before its bytes are in.
  m.begin();
  t = 60;
  assert.ok(Math.abs(m.estimate()! - 100) < 1, `mid-read: got ${m.estimate()}`);
  m.end(800);
  assert.ok(Math.abs(m.estimate()! - 100) < 1, `got ${m.estimate()}`);
});

test('bandwidth meter: recent reads dominate after a change in speed', () => {
  let t = 0;
  const m = new BandwidthMeter({ now: () => t, halfLifeSeconds: 1 });
  for (let i = 0; i < 20; i++) {
    m.begin();
    t += 1;
    m.end(1000);
  }
  for (let i = 0; i < 20; i++) {
    m.begin();
    t += 1;
    m.end(100);
  }
  const e = m.estimate()!;
  assert.ok(e > 95 && e < 110, `estimate ${e} should follow the recent 100 B/s`);
});

test.run();
