/**
 * Assertions catch *our* bugs (TigerStyle): one fact per call, kept on in production.
 * Untrusted input (wire, disk, user) is validated and rejected with a typed error instead.
 */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Marks a branch the type system proves impossible; reaching it at run time is a bug. */
export function unreachable(value: never, message = 'unreachable'): never {
  throw new AssertionError(`${message}: ${String(value)}`);
}

/** Documents that both outcomes of `condition` are acceptable (TigerBeetle's `maybe`). It checks nothing. */
export function maybe(_condition: boolean): void {}
