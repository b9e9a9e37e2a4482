// Shared by the fuzz suites: the seed and size of a run, and a wrapper that runs a
// fast-check property and says how to reproduce its failure.
//
//   npm test                        every property at its base size, fixed seed
//   npm run fuzz                    KVCAKE_FUZZ_SCALE=20, a fresh seed (printed)
//   KVCAKE_FUZZ_SEED=123 npm test   a given seed
//
// Each property gets its own seed derived from the run's seed and its name, so a failure
// reproduces with the run's seed alone. fast-check's own report (seed, path, the shrunk
// counterexample) follows the line that names the property.
import fc from 'fast-check';

export const SEED = process.env.KVCAKE_FUZZ_SEED !== undefined ? Number(process.env.KVCAKE_FUZZ_SEED) : 20261123;
export const SCALE = Number(process.env.KVCAKE_FUZZ_SCALE ?? 1);
if (!Number.isSafeInteger(SEED)) throw new Error(`KVCAKE_FUZZ_SEED must be an integer, got ${process.env.KVCAKE_FUZZ_SEED}`);
if (!(SCALE > 0)) throw new Error(`KVCAKE_FUZZ_SCALE must be a positive number, got ${process.env.KVCAKE_FUZZ_SCALE}`);

/** Calls made into the library by the properties, by surface, for the closing count. */
export const calls: Record<string, number> = {};
export function count(surface: string, n = 1): void {
  calls[surface] = (calls[surface] ?? 0) + n;
}
export function totalCalls(): number {
  return Object.values(calls).reduce((a, b) => a + b, 0);
}

function seedFor(name: string): number {
  let h = SEED | 0;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h | 0;
}

export async function check<T>(name: string, arb: fc.Arbitrary<T>, body: (v: T) => unknown | Promise<unknown>, baseRuns: number): Promise<void> {
  const numRuns = Math.max(1, Math.round(baseRuns * SCALE));
  const seed = seedFor(name);
  const async = fc.asyncProperty(arb, async (v) => {
    await body(v);
  });
  try {
    await fc.assert(async, { seed, numRuns, includeErrorInReport: true });
  } catch (err) {
    const msg = `fuzz property "${name}" failed (run seed ${SEED}, property seed ${seed}, ${numRuns} runs); reproduce with KVCAKE_FUZZ_SEED=${SEED} KVCAKE_FUZZ_SCALE=${SCALE} npm test -- fuzz`;
    console.error(`\n${msg}`);
    throw new Error(`${msg}\n${(err as Error).message}`, { cause: err });
  }
}

/** A thrown value must be an Error whose message starts with one of `prefixes` and a colon. */
export function namedError(err: unknown, prefixes: readonly string[], context: string): void {
  if (!(err instanceof Error)) throw new Error(`${context}: threw a non-Error: ${String(err)}`);
  const ok = prefixes.some((p) => err.message.startsWith(`${p}: `) || err.message.startsWith(`${p} `));
  if (!ok) throw new Error(`${context}: error does not name the function: ${err.constructor.name}: ${err.message}`);
  if (err.constructor !== TypeError && err.constructor !== RangeError && err.constructor !== Error)
    throw new Error(`${context}: unexpected error class ${err.constructor.name}: ${err.message}`);
}

/** One line with the calls made so far in this process (uvu runs every file in one). */
export function report(): void {
  console.log(`\nfuzz (seed ${SEED}, scale ${SCALE}): ${Object.entries(calls).map(([k, v]) => `${v} ${k}`).join(', ')}; ${totalCalls()} calls so far`);
}
