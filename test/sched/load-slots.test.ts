// LoadSlots: expected landings on one read channel, corrected by the landings seen, against
// hand-worked schedules and, on random ones, against a reference that replays the landings
// in time order and shifts the loads behind each by its error.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LoadSlots } from '../../lib/sched/cake/load-slots.js';
import { mulberry32 } from '../../lib/workload/rng.js';

const close = (a: number | undefined, b: number, what: string) => assert.ok(a !== undefined && Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`);

test('loads issued together queue one after another; a late landing shifts the rest', () => {
  const s = new LoadSlots<string>();
  assert.equal(s.end, -Infinity);
  close(s.add('a', 0, 1), 1, 'a');
  close(s.add('b', 0, 1), 2, 'b');
  close(s.add('c', 0.5, 1), 3, 'c');
  s.land('a', 1.5);
  close(s.expected('b'), 2.5, 'b after a was 0.5 late');
  close(s.end, 3.5, 'end');
  s.land('b', 2.2);
  close(s.end, 3.2, 'end after b was early again');
  s.land('c', 3.3);
  assert.is(s.size, 0);
  close(s.end, 3.3, 'drained: the latest landing');
  // Drained: a new load starts now (or after the latest landing), with no lateness left.
  close(s.add('d', 5, 1), 6, 'd');
});

test('a load that overtakes an earlier one fills the first slot: the rest keep theirs', () => {
  const s = new LoadSlots<number>();
  for (const k of [7, 6, 5, 4]) s.add(k, 0, 0.01);
  s.land(6, 0.01);
  close(s.end, 0.04, 'end');
  close(s.expected(7), 0.01, '7 keeps its own slot (it now lands in the next one)');
  s.land(7, 0.02);
  close(s.end, 0.04, 'end after both');
});

test('landings reported out of their time order come right once all are reported', () => {
  const s = new LoadSlots<number>();
  for (const k of [0, 1, 2, 3]) s.add(k, 0, 1);
  s.land(1, 2.25);
  s.land(0, 1.25);
  close(s.end, 4.25, 'end');
});

test('a landing without a time frees its slot and keeps the ranks aligned', () => {
  const s = new LoadSlots<number>();
  for (const k of [0, 1, 2]) s.add(k, 0, 1);
  s.land(0);
  close(s.end, 3, 'end');
  s.land(1, 2.5);
  close(s.end, 3.5, 'end');
  s.land(5, 9);
  close(s.end, 3.5, 'an unknown key changes nothing');
});

test('random schedules landing in issue order: the same as shifting the loads behind each landing by its error', () => {
  const rnd = mulberry32(17);
  for (let trial = 0; trial < 200; trial++) {
    const s = new LoadSlots<number>();
    const ref = new Map<number, number>();
    let refEnd = -Infinity;
    let lastLanding = -Infinity;
    let now = 0;
    let next = 0;
    const order: number[] = [];
    for (let op = 0; op < 40; op++) {
      now += rnd() * 0.5;
      if (order.length === 0 || rnd() < 0.5) {
        const secs = 0.1 + rnd();
        const at = Math.max(now, ref.size > 0 ? Math.max(...ref.values()) : refEnd) + secs;
        close(s.add(next, now, secs), at, `trial ${trial} add`);
        ref.set(next, at);
        order.push(next++);
      } else {
        const k = order.shift()!;
        // In issue order, so in time order too: no earlier than the landing before it.
        const at = Math.max(lastLanding, ref.get(k)! + (rnd() - 0.5));
        lastLanding = at;
        const delta = at - ref.get(k)!;
        ref.delete(k);
        for (const [j, t] of ref) ref.set(j, t + delta);
        s.land(k, at);
        refEnd = ref.size > 0 ? Math.max(...ref.values()) : at;
        close(s.end, refEnd, `trial ${trial} end`);
        for (const [j, t] of ref) close(s.expected(j), t, `trial ${trial} load ${j}`);
      }
    }
  }
});

test.run();
