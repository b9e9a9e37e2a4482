// A reference sampler, written from the sampling contract (docs/model-native-api.md), to
// check the native one token for token:
//   temperature 0: argmax, lowest id on ties;
//   else logits / T -> top-k -> softmax (fp64) -> top-p (smallest most-probable prefix
//   whose mass reaches p, at least one) -> one draw u * Z on the cumulative masses.
// Candidates are visited in id order when neither top-k nor top-p filters, else in order
// of (logit desc, id asc). The draw is u = uniform01(seed, counter), SplitMix64-based,
// computed here with BigInt so every bit is the native one.

const M64 = (1n << 64n) - 1n;

function mix64(z: bigint): bigint {
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & M64;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & M64;
  return z ^ (z >> 31n);
}

export function randomBits(seed: number | bigint, counter: number | bigint): bigint {
  const s = BigInt(seed) & M64;
  const c = BigInt(counter) & M64;
  return mix64(mix64((s + 0x9e3779b97f4a7c15n) & M64) ^ ((c * 0xd1b54a32d192ed03n + 0x9e3779b97f4a7c15n) & M64));
}

/** Uniform in [0, 1) from the top 53 bits. */
export function uniform01(seed: number | bigint, counter: number | bigint): number {
  return Number(randomBits(seed, counter) >> 11n) / 2 ** 53;
}

export interface RefSampling {
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
}

export function refSample(logits: ArrayLike<number>, s: RefSampling, counter: number): number {
  const vocab = logits.length;
  const t = s.temperature ?? 0;
  if (!(t > 0)) {
    let best = 0;
    for (let i = 1; i < vocab; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  const topK = s.topK ?? 0;
  const topP = s.topP ?? 1;
  let ids = Array.from({ length: vocab }, (_, i) => i);
  const byLogit = (a: number, b: number) => (logits[b] - logits[a]) || a - b;
  if (topK > 0 && topK < vocab) ids = ids.sort(byLogit).slice(0, topK);
  else if (topP < 1) ids.sort(byLogit);
  let max = -Infinity;
  for (const i of ids) max = Math.max(max, logits[i]);
  const invT = 1 / Math.fround(t); // temperature arrives as fp32
  const p = ids.map((i) => Math.exp((logits[i] - max) * invT));
  let z = p.reduce((a, b) => a + b, 0);
  let n = ids.length;
  if (topP < 1) {
    // topP arrives as fp32 on the native side.
    const pf = Math.fround(topP);
    let cum = 0;
    let keep = 0;
    while (keep < n) {
      cum += p[keep] / z;
      keep++;
      if (cum >= pf) break;
    }
    n = keep;
    z = 0;
    for (let i = 0; i < n; i++) z += p[i];
  }
  const u = uniform01(s.seed ?? 0, counter) * z;
  let cum = 0;
  for (let i = 0; i < n; i++) {
    cum += p[i];
    if (u < cum) return ids[i];
  }
  return ids[n - 1];
}
