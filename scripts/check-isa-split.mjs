// Checks the compiled CPU addon's objects for the ISA split (csrc/cpu/isa.h): code that may
// run before the run-time dispatch must not contain a single AVX instruction, so a CPU
// without AVX reaches the dispatch (and the scalar path) instead of faulting.
//   - objects of files without an _avx2 / _avx512 suffix: no VEX/EVEX instruction at all;
//   - *_avx2.o / *_avx512.o: every function with such instructions belongs to a level's
//     namespace (kvcake::cpu::avx2, ..., or kvcake::store::avx2 for the store's checksum),
//     so no inline function or template compiled there can replace the baseline copy of a
//     shared one at link time.
// Usage: node scripts/check-isa-split.mjs [objdir]   (default: build/Release/obj.target)
// Prints what it checked; exits 1 on a violation, 2 when there is nothing to check.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** Object files under dir, recursively. */
export function objectFiles(dir) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const f = path.join(d, e.name);
      if (e.isDirectory()) walk(f);
      else if (e.name.endsWith('.o')) out.push(f);
    }
  };
  walk(dir);
  return out.sort();
}

// A VEX/EVEX-encoded instruction (every AVX mnemonic starts with v) or an AVX register.
const AVX = /^v[a-z0-9]+$|%[yz]mm\d|%k[0-7]\b/;

/** Per function, the AVX instructions it holds: Map(name -> [first offending line]). */
export function avxFunctions(obj) {
  const text = execFileSync('objdump', ['-d', '-C', '--no-show-raw-insn', obj], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const found = new Map();
  let fn = '';
  for (const line of text.split('\n')) {
    const head = line.match(/^[0-9a-f]+ <(.*)>:$/);
    if (head) {
      fn = head[1];
      continue;
    }
    const ins = line.match(/^\s+[0-9a-f]+:\s+(\S+)\s*(.*)$/);
    if (!ins) continue;
    if (AVX.test(ins[1]) || AVX.test(ins[2])) if (!found.has(fn)) found.set(fn, line.trim());
  }
  return found;
}

function levelOf(obj) {
  const m = path.basename(obj).match(/_(avx2|avx512)\.(cc\.)?o$/);
  return m ? m[1] : undefined;
}

/** Checks every object; returns { checked, violations }. */
export function checkIsaSplit(objdir) {
  const violations = [];
  const objs = objectFiles(objdir);
  for (const obj of objs) {
    const level = levelOf(obj);
    const rel = path.relative(objdir, obj);
    for (const [fn, line] of avxFunctions(obj)) {
      if (!level) violations.push(`${rel}: ${fn} holds an AVX instruction in a baseline file: ${line}`);
      else if (!/kvcake::(cpu|store)::avx(2|512[a-z0-9]*)::/.test(fn))
        violations.push(`${rel}: ${fn} holds AVX instructions outside a level namespace (kvcake::cpu::avx2/avx512..., kvcake::store::avx2/avx512): ${line}`);
    }
  }
  return { checked: objs.map((o) => path.relative(objdir, o)), violations };
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const dir = path.resolve(process.argv[2] ?? path.join(root, 'build', 'Release', 'obj.target'));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    console.error(`check-isa-split: no object directory at ${dir}; build with \`npm run build:native\` first`);
    process.exit(2);
  }
  const { checked, violations } = checkIsaSplit(dir);
  if (checked.length === 0) {
    console.error(`check-isa-split: no object files under ${dir}`);
    process.exit(2);
  }
  const simd = checked.filter((o) => levelOf(o));
  console.log(`check-isa-split: ${checked.length} objects, ${checked.length - simd.length} at the baseline, ${simd.length} SIMD (${simd.join(', ')})`);
  for (const v of violations) console.log(`  ${v}`);
  console.log(violations.length ? `check-isa-split: ${violations.length} violations` : 'check-isa-split: ok');
  process.exit(violations.length ? 1 : 0);
}
