// Makes sure a native addon can be loaded before tests or benchmarks run. `npm ci` builds
// it through the package's install script; if install scripts were skipped
// (--ignore-scripts, or an npm that blocks them) and no prebuild fits, build it now.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);

function loads() {
  try {
    require('node-gyp-build')(root);
    return true;
  } catch {
    return false;
  }
}

if (!loads()) {
  console.log('kvcake: no native addon found for this platform; building the CPU backend (node-gyp rebuild)...');
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['run', 'build:native'], { cwd: root, stdio: 'inherit' });
  if (r.status !== 0 || !loads()) {
    console.error(
      'kvcake: could not build the native addon. It needs python3, make and a C++17 compiler\n' +
        'with Node headers (node-gyp). Install them and run `npm run build:native`.',
    );
    process.exit(1);
  }
}
