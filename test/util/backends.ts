// Runs a native test suite once per backend: 'cpu' always, 'cuda' when a CUDA device is
// usable. When it is not, the CUDA suite is reported as skipped and the reason is printed
// once per run.
import { suite, type Test } from 'uvu';
import { createBackend, cudaInfo, type Backend } from '../../lib/index.js';

export type Kind = 'cpu' | 'cuda';

let reasonPrinted = false;

export function cudaSkipReason(): string | undefined {
  const info = cudaInfo();
  return info.usable ? undefined : info.reason;
}

/**
 * Defines `name [cpu]` and `name [cuda]` suites. `define` registers tests on the suite;
 * `be()` is the suite's backend, created once before its tests.
 */
export function forEachBackend(name: string, define: (test: Test, be: () => Backend, kind: Kind) => void): void {
  for (const kind of ['cpu', 'cuda'] as const) {
    const s = suite(`${name} [${kind}]`);
    const why = kind === 'cuda' ? cudaSkipReason() : undefined;
    if (why !== undefined) {
      if (!reasonPrinted) {
        console.log(`\nkvcake native tests: CUDA runs skipped: ${why}`);
        reasonPrinted = true;
      }
      s.skip(`${name} on cuda`, () => {});
      s.run();
      continue;
    }
    let backend: Backend | undefined;
    s.before(() => {
      backend = createBackend({ backend: kind });
    });
    define(s, () => backend!, kind);
    s.run();
  }
}
