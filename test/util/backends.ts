// Runs a native test suite once per backend: 'cpu' always, 'cuda' when a CUDA device is
// usable. When it is not, the CUDA suite is reported as skipped and the reason is printed
// once per run. Kernel suites take `levels()` too: on the CPU one backend per
// instruction-set level this machine supports (scalar, avx2, avx512, ...), so every
// dispatched path meets the same reference result; on CUDA just the one backend.
import { suite, type Test } from 'uvu';
import { createBackend, cudaInfo, type Backend, type CpuIsa } from '../../lib/index.js';

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
export function forEachBackend(
  name: string,
  define: (test: Test, be: () => Backend, kind: Kind, levels: () => Backend[]) => void,
): void {
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
    let levels: Backend[] = [];
    s.before(() => {
      backend = createBackend({ backend: kind });
      levels = kind === 'cpu' ? cpuIsas().map((cpuIsa) => createBackend({ backend: 'cpu', cpuIsa })) : [backend];
    });
    define(s, () => backend!, kind, () => levels);
    s.run();
  }
}

/** Every CPU instruction-set level this machine supports, lowest first. */
export function cpuIsas(): CpuIsa[] {
  return createBackend({ backend: 'cpu', cpuIsa: 'auto' }).info().supportedIsas ?? ['scalar'];
}

/** A backend's name for messages: 'cpu avx2', 'cuda'. */
export function levelName(be: Backend): string {
  const isa = be.info().isa;
  return isa ? `${be.name} ${isa}` : be.name;
}
