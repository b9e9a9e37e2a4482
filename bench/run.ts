// `npm run bench`: runs every group in bench/groups (or those named), prints tables as it
// goes, writes bench/results/<group>.json, and ends with a summary of headline figures.
//   npm run bench                      default suite (a few minutes on 2 cores)
//   npm run bench -- --full            the full grid
//   npm run bench -- attention copy    only the named groups (substring match)
//   npm run bench -- --backend cuda    native groups on CUDA ('cpu' | 'cuda' | 'auto')
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { formatTable, type BenchContext, type BenchGroup, type Headline } from './harness.js';
import { cpuTicks, loadBetween } from './machine-load.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
if (args.includes('--help') || args.includes('-h')) {
  console.log('usage: npm run bench -- [--full] [--backend cpu|cuda|auto] [group ...]');
  process.exit(0);
}
const full = args.includes('--full');
const bi = args.indexOf('--backend');
const backend = bi >= 0 ? (args[bi + 1] ?? 'cpu') : (process.env.KVCAKE_BACKEND ?? 'cpu');
const filters = args.filter((a, i) => !a.startsWith('--') && !(bi >= 0 && i === bi + 1));

const files = readdirSync(path.join(here, 'groups'))
  .filter((f) => f.endsWith('.ts'))
  .sort();
const groups: BenchGroup[] = [];
for (const f of files) {
  const mod = (await import(pathToFileURL(path.join(here, 'groups', f)).href)) as { group?: BenchGroup };
  if (mod.group) groups.push(mod.group);
}
// A filter naming a group exactly selects that group only; otherwise it selects every group whose name contains it.
const selected = groups.filter((g) => filters.length === 0 || filters.some((p) => (groups.some((h) => h.name === p) ? g.name === p : g.name.includes(p))));
if (selected.length === 0) {
  console.error(`no benchmark group matches ${filters.join(', ')}; groups: ${groups.map((g) => g.name).join(', ')}`);
  process.exit(2);
}

const resultsDir = path.join(here, 'results');
mkdirSync(resultsDir, { recursive: true });
const machine = {
  cpu: os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  memGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  platform: `${process.platform}-${process.arch}`,
};
console.log(`kvcake bench: ${selected.map((g) => g.name).join(', ')}${full ? ' (full grid)' : ''}`);
console.log(`machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memGiB} GiB, node ${machine.node}\n`);

const summary: (Headline & { group: string })[] = [];
let failed = false;
for (const [i, g] of selected.entries()) {
  const t0 = performance.now();
  const ticks0 = cpuTicks();
  const tables: { title: string; rows: Record<string, unknown>[] }[] = [];
  const extra: Record<string, unknown> = {};
  console.log(`[${i + 1}/${selected.length}] ${g.title}${g.estimate ? ` (~${g.estimate})` : ''}`);
  const ctx: BenchContext = {
    full,
    backend,
    progress: (msg) => process.stderr.write(`  … ${msg}\n`),
    table: (title, rows) => {
      tables.push({ title, rows });
      console.log(`\n  ${title}\n${formatTable(rows)}\n`);
    },
    record: (k, v) => {
      extra[k] = v;
    },
  };
  try {
    const heads = await g.run(ctx);
    for (const h of heads) summary.push({ group: g.name, ...h });
    const seconds = (performance.now() - t0) / 1000;
    const load = loadBetween(ticks0, cpuTicks());
    writeFileSync(
      path.join(resultsDir, `${g.name}.json`),
      JSON.stringify({ group: g.name, title: g.title, full, backend, machine, date: new Date().toISOString(), seconds, load, headlines: heads, tables, ...extra }, null, 2),
    );
    const steal = load.stealPct === null ? '' : `, steal ${load.stealPct.toFixed(1)}% of CPU time`;
    console.log(`  done in ${seconds.toFixed(1)} s (load average ${load.load1.toFixed(2)}${steal})\n`);
  } catch (err) {
    failed = true;
    console.error(`  group ${g.name} failed: ${(err as Error).stack ?? err}\n`);
    summary.push({ group: g.name, metric: 'error', value: (err as Error).message });
  }
}

console.log('Summary');
console.log(
  formatTable(
    summary.map((s) => ({
      group: s.group,
      metric: s.metric,
      value: s.value,
      target: s.target ?? '',
      met: s.met === undefined ? '' : s.met ? 'yes' : 'NO',
    })),
  ),
);
console.log(`\nJSON results in ${path.relative(process.cwd(), resultsDir) || '.'}/`);
process.exit(failed ? 1 : 0);
