// Runs every test/**/*.test.ts with uvu (through tsx) and ends with one plain closing line,
// "N passed, N failed, N skipped", that CI logs can be read by.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const uvu = path.join(root, 'node_modules', 'uvu', 'bin.js');
const pattern = process.argv[2] ?? '\\.test\\.ts$';
const child = spawn(process.execPath, ['--import', 'tsx', uvu, 'test', pattern], {
  cwd: root,
  stdio: ['ignore', 'pipe', 'inherit'],
});
let out = '';
child.stdout.on('data', (d) => {
  out += d;
  process.stdout.write(d);
});
child.on('close', (code) => {
  // uvu's summary has ANSI colour codes around the numbers.
  const plain = out.replace(/\u001b\[[0-9;]*m/g, '');
  const num = (label) => Number((plain.match(new RegExp(`${label}:\\s+(\\d+)`)) ?? [])[1] ?? 0);
  const total = num('Total');
  const passed = num('Passed');
  const skipped = num('Skipped');
  const failed = Math.max(0, total - passed - skipped);
  console.log(`\ntests: ${passed} passed, ${code === 0 ? failed : Math.max(failed, 1)} failed, ${skipped} skipped`);
  process.exit(code ?? 1);
});
