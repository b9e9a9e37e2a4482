// How a rejected value is shown in an error message. Never throws: a Symbol in a template
// literal would, and a BigInt must keep its n to be told from a number.
export function show(v: unknown): string {
  switch (typeof v) {
    case 'number':
    case 'boolean':
      return String(v);
    case 'bigint':
      return `${v}n`;
    case 'string':
      return JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v);
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
    case 'undefined':
      return 'undefined';
    default:
      if (v === null) return 'null';
      if (Array.isArray(v)) return 'an array';
      if (ArrayBuffer.isView(v)) return article(safeName(v));
      return 'an object';
  }
}

function safeName(v: object): string {
  try {
    return (Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null)?.constructor?.name?.toString() ?? 'typed array';
  } catch {
    return 'typed array';
  }
}

function article(name: string): string {
  return `${/^[AEIOU]/i.test(name) ? 'an' : 'a'} ${name}`;
}
