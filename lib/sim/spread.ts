// Step-time spread for the simulator: factors resampled from a measured set (an engine's
// steps over their fit, fitEngineSteps' residuals), scaled to mean 1 so the spread moves no
// step's expected time, only how the times scatter around it. Seeded: the same seed gives
// the same draws, so a simulation with a spread is still reproducible.
import { mulberry32 } from '../workload/rng.js';
import { show } from '../util/show.js';

export function resampledSpread(factors: ArrayLike<number>, seed: number): () => number {
  const n = factors.length;
  if (!(n >= 1)) throw new RangeError('resampledSpread: factors must hold at least one value');
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const f = factors[i];
    if (!(typeof f === 'number' && f > 0 && Number.isFinite(f))) throw new RangeError(`resampledSpread: factors[${i}] must be a finite number > 0, got ${show(f)}`);
    sum += f;
  }
  const scale = n / sum;
  const rnd = mulberry32(seed);
  return () => factors[Math.min(n - 1, Math.floor(rnd() * n))] * scale;
}
