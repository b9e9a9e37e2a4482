// The README's layout is the data flow: each lib/ folder imports only from folders listed
// above it. This reads that list and every relative import under lib/ and checks the rule.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const lib = path.join(root, 'lib');

/** lib/ units in README order: a folder name, or a top-level file's name without .ts. */
function readmeOrder(): string[] {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('```\nlib/contract/');
  const block = readme.slice(start, readme.indexOf('```', start + 3));
  const out: string[] = [];
  for (const line of block.split('\n')) {
    for (const m of line.matchAll(/\blib\/([a-z-]+)(\/|\.ts)/g)) if (!out.includes(m[1])) out.push(m[1]);
  }
  return out;
}

function unitOf(file: string): string {
  const rel = path.relative(lib, file).split(path.sep);
  return rel.length > 1 ? rel[0] : rel[0].replace(/\.(ts|js)$/, '');
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const f = path.join(dir, e);
    return statSync(f).isDirectory() ? sources(f) : f.endsWith('.ts') ? [f] : [];
  });
}

test('layout: every lib/ unit is in the README list, and imports only units above it', () => {
  const order = readmeOrder();
  const rank = new Map(order.map((u, i) => [u, i]));
  const bad: string[] = [];
  for (const file of sources(lib)) {
    const from = unitOf(file);
    if (from === 'index') continue; // the package entry re-exports everything
    if (!rank.has(from)) {
      bad.push(`${path.relative(root, file)}: lib/${from} is not in the README's layout`);
      continue;
    }
    for (const m of readFileSync(file, 'utf8').matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
      const to = unitOf(path.resolve(path.dirname(file), m[1]));
      if (to === from) continue;
      // lib/native.ts and lib/backend.ts share one line of the list.
      const rt = rank.get(to);
      if (rt === undefined || rt > rank.get(from)!) bad.push(`${path.relative(root, file)} imports lib/${to}, listed below lib/${from}`);
    }
  }
  assert.equal(bad, []);
});

test.run();
