// Parsers for command-line values; each error names the option and what it accepts.
import { InvalidArgumentError } from 'commander';

/** A command line that cannot work: exit status 2, like commander's own usage errors here. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 2 ** 10, m: 1e6, mb: 1e6, mib: 2 ** 20, g: 1e9, gb: 1e9, gib: 2 ** 30, t: 1e12, tb: 1e12, tib: 2 ** 40 };

/** "512MiB", "1.5GiB", "800MB", "1e9" -> bytes. */
export function parseBytes(s: string): number {
  const m = /^\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*$/i.exec(s);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InvalidArgumentError(`expected a size such as 512MiB, 2GiB or 1000000, got ${JSON.stringify(s)}`);
  const v = Math.floor(Number(m[1]) * unit);
  if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(`size ${JSON.stringify(s)} is too large`);
  return v;
}

export function parseInteger(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (s: string): number => {
    const v = Number(s);
    if (!/^-?\d+$/.test(s.trim()) || !Number.isSafeInteger(v) || v < min || v > max) throw new InvalidArgumentError(`expected an integer in [${min}, ${max}], got ${JSON.stringify(s)}`);
    return v;
  };
}

export function parsePositive(s: string): number {
  const v = Number(s);
  if (s.trim() === '' || !Number.isFinite(v) || v <= 0) throw new InvalidArgumentError(`expected a number > 0, got ${JSON.stringify(s)}`);
  return v;
}

/** "1,2,4" or "inf" -> rates (requests/s). */
export function parseRates(s: string): number[] {
  const out = s.split(',').map((x) => x.trim().toLowerCase());
  return out.map((x) => {
    if (x === 'inf') return Infinity;
    const v = Number(x);
    if (x === '' || !Number.isFinite(v) || v <= 0) throw new InvalidArgumentError(`expected rates > 0 separated by commas (or inf), got ${JSON.stringify(s)}`);
    return v;
  });
}

/** "128" or "64:256" -> a fixed length or an inclusive range. */
export function parseLength(s: string): number | [number, number] {
  const m = /^\s*(\d+)\s*(?::\s*(\d+)\s*)?$/.exec(s);
  if (!m) throw new InvalidArgumentError(`expected a length N or a range MIN:MAX, got ${JSON.stringify(s)}`);
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  if (a < 1 || b < a) throw new InvalidArgumentError(`expected 1 <= MIN <= MAX, got ${JSON.stringify(s)}`);
  return m[2] === undefined ? a : [a, b];
}

/** "GROUPS:TOKENS" -> shared-prefix groups. */
export function parseSharedPrefix(s: string): { groups: number; tokens: number } {
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(s);
  if (!m || Number(m[1]) < 1) throw new InvalidArgumentError(`expected GROUPS:TOKENS (e.g. 4:512), got ${JSON.stringify(s)}`);
  return { groups: Number(m[1]), tokens: Number(m[2]) };
}

/** "azure:PATH" or "mooncake:PATH". */
export function parseTrace(s: string): { kind: 'azure' | 'mooncake'; path: string } {
  const m = /^(azure|mooncake):(.+)$/.exec(s);
  if (!m) throw new InvalidArgumentError(`expected azure:PATH (CSV) or mooncake:PATH (JSONL), got ${JSON.stringify(s)}`);
  return { kind: m[1] as 'azure' | 'mooncake', path: m[2] };
}

/** "LO:HI" -> token ids in [LO, HI). */
export function parseTokenRange(s: string): { lo: number; hi: number } {
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(s);
  if (!m || Number(m[2]) <= Number(m[1])) throw new InvalidArgumentError(`expected LO:HI with LO < HI (token ids in [LO, HI)), got ${JSON.stringify(s)}`);
  return { lo: Number(m[1]), hi: Number(m[2]) };
}

/** vLLM's --goodput form: "ttft:MS,tpot:MS,e2el:MS" (milliseconds) -> SLOs in seconds. */
export function parseGoodput(s: string): { ttft?: number; tpot?: number; e2e?: number } {
  const out: { ttft?: number; tpot?: number; e2e?: number } = {};
  for (const part of s.split(',')) {
    const m = /^\s*(ttft|tpot|e2el)\s*:\s*([0-9.]+)\s*$/.exec(part);
    const v = m ? Number(m[2]) : NaN;
    if (!m || !(v > 0)) throw new InvalidArgumentError(`expected ttft:MS,tpot:MS,e2el:MS (any of them, milliseconds > 0), got ${JSON.stringify(s)}`);
    out[m[1] === 'e2el' ? 'e2e' : (m[1] as 'ttft' | 'tpot')] = v / 1000;
  }
  return out;
}

/** The tiers of `--store`: comma-separated memory:SIZE, disk:PATH, redis://HOST:PORT (or
 *  rediss://), each at most once. */
export interface StoreSpec {
  memoryBytes?: number;
  diskDir?: string;
  redisUrl?: string;
}

export function parseStoreSpec(s: string): StoreSpec {
  const spec: StoreSpec = {};
  const fail = (why: string): never => {
    throw new InvalidArgumentError(`${why}; expected tiers separated by commas: memory:SIZE, disk:PATH, redis://HOST:PORT (e.g. memory:2GiB,disk:/var/cache/kvcake)`);
  };
  for (const part of s.split(',').map((x) => x.trim())) {
    if (part === '') fail(`empty tier in ${JSON.stringify(s)}`);
    if (/^rediss?:\/\//.test(part)) {
      if (spec.redisUrl !== undefined) fail('redis given twice');
      try {
        new URL(part);
      } catch {
        fail(`${JSON.stringify(part)} is not a URL`);
      }
      spec.redisUrl = part;
    } else if (part.startsWith('memory:')) {
      if (spec.memoryBytes !== undefined) fail('memory given twice');
      spec.memoryBytes = parseBytes(part.slice('memory:'.length));
    } else if (part.startsWith('disk:')) {
      if (spec.diskDir !== undefined) fail('disk given twice');
      const dir = part.slice('disk:'.length);
      if (dir === '') fail('disk: needs a directory');
      spec.diskDir = dir;
    } else {
      fail(`unknown tier ${JSON.stringify(part)}`);
    }
  }
  return spec;
}
