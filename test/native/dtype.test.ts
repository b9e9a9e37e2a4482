// The public fp16/bf16 helpers (lib/backend/dtype.ts) agree with the reference's own
// conversions: round to nearest even, subnormals, overflow to infinity, signed zero.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bf16BitsToFp32, fp16BitsToFp32, fp32ToBf16Bits, fp32ToFp16Bits } from '../../lib/index.js';
import { fromBits, roundTo, toBits } from '../reference.js';
import { Rng } from '../util/rng.js';

const EDGES = [0, -0, 1, -1, 65504, 65519, 65520, 1e6, -1e6, 2 ** -14, 2 ** -24, 2 ** -25, 3 * 2 ** -26, 2 ** -26, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 0.1, 1 / 3, 3.14159, 1e-40, 3.4e38];

for (const [name, enc, dec] of [
  ['fp16', fp32ToFp16Bits, fp16BitsToFp32],
  ['bf16', fp32ToBf16Bits, bf16BitsToFp32],
] as const) {
  test(`${name}: encode matches the reference rounding, decode inverts it`, () => {
    const rng = new Rng(name.length);
    const xs = [...EDGES, ...Array.from({ length: 5000 }, () => rng.sym(1) * 2 ** rng.int(-30, 20))].map(Math.fround);
    for (const x of xs) {
      const want = roundTo(name, x);
      const bits = enc(x);
      assert.is(bits, toBits(name, want), `${name}(${x}): bits ${bits.toString(16)} vs reference ${toBits(name, want).toString(16)}`);
      assert.is(Object.is(dec(bits), want) || dec(bits) === want, true, `${name} decode of ${bits.toString(16)}`);
    }
    for (let h = 0; h < 0x10000; h += 7) {
      const a = dec(h);
      const b = fromBits(name, h);
      assert.ok(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)), `${name} bits ${h.toString(16)}: ${a} vs ${b}`);
    }
    assert.ok(Number.isNaN(dec(enc(NaN))));
  });
}

test.run();
