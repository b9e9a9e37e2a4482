// Error assertions that check the class and the whole message, word for word.
import * as assert from 'uvu/assert';

type ErrorClass = abstract new (...args: never[]) => Error;

export function throwsExactly(fn: () => unknown, type: ErrorClass, message: string): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, type, `expected ${type.name}, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    assert.is((err as Error).message, message);
    return;
  }
  assert.unreachable(`expected ${type.name}: ${message}`);
}

export async function rejectsExactly(p: Promise<unknown> | (() => Promise<unknown>), type: ErrorClass, message: string): Promise<void> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (err) {
    assert.instance(err, type, `expected ${type.name}, got ${(err as Error)?.constructor?.name}: ${(err as Error)?.message}`);
    assert.is((err as Error).message, message);
    return;
  }
  assert.unreachable(`expected ${type.name}: ${message}`);
}
