#!/usr/bin/env node
// The `kvcake` command. A checkout runs the TypeScript sources through tsx (a dev
// dependency), so it never runs a stale build; an installed package, which ships dist/ and
// not lib/, runs the compiled CLI.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = path.join(root, 'lib', 'cli', 'main.ts');
let tsx = false;
try {
  createRequire(import.meta.url).resolve('tsx/esm/api');
  tsx = existsSync(source);
} catch {}
let mod;
if (tsx) {
  const { register } = await import('tsx/esm/api');
  register();
  mod = await import(pathToFileURL(source).href);
} else {
  mod = await import(pathToFileURL(path.join(root, 'dist', 'cli', 'main.js')).href);
}
await mod.main(process.argv.slice(2));
