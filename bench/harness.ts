// What every benchmark group implements, and the small helpers they share for printing.
// Groups live in bench/groups/*.ts, one file each, and export `group`.

export interface BenchOptions {
  /** Run the full grid instead of the default suite. */
  full: boolean;
  /** Backend for native groups: 'cpu' | 'cuda' | 'auto'. */
  backend: string;
}

/** One headline figure of a group, shown in the closing summary. */
export interface Headline {
  metric: string;
  value: string;
  /** The target, in words ("≥ 0.8x memcpy"), when the project sets one. */
  target?: string;
  /** Whether the target is met; undefined when there is no target. */
  met?: boolean;
}

export interface BenchContext extends BenchOptions {
  /** A progress line (goes to stderr so tables stay readable when piped). */
  progress(msg: string): void;
  /** Prints a table now and keeps it for the group's JSON result. */
  table(title: string, rows: Record<string, unknown>[]): void;
  /** Extra data for the group's JSON result. */
  record(key: string, value: unknown): void;
}

export interface BenchGroup {
  name: string;
  title: string;
  /** Rough wall time of the default suite, for the progress line. */
  estimate?: string;
  run(ctx: BenchContext): Promise<Headline[]>;
}

export function formatTable(rows: Record<string, unknown>[]): string {
  if (rows.length === 0) return '  (no rows)';
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown): string =>
    v === undefined || v === null ? '' : typeof v === 'number' ? fmtNum(v) : String(v);
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) => '  ' + vals.map((v, i) => v.padStart(widths[i])).join('  ');
  return [line(cols), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n');
}

export function fmtNum(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(1);
  if (a >= 1) return v.toFixed(2);
  return v.toPrecision(3);
}
