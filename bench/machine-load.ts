// What else the machine was doing while a group ran: the share of CPU time the hypervisor
// gave to others (steal, from /proc/stat; a VM's vCPU is runnable but not running) and the
// load average. Both say how far a run's figures can be trusted on a shared machine.
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';

export interface CpuTicks {
  steal: number;
  total: number;
}

/** Ticks of all CPUs since boot (Linux), or null elsewhere. */
export function cpuTicks(): CpuTicks | null {
  if (!existsSync('/proc/stat')) return null;
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is inside user)
  if (f.length < 8 || f.some((x) => !Number.isFinite(x))) return null;
  return { steal: f[7], total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
}

/** Steal as a share of all CPU time between two readings, and the 1-minute load average. */
export function loadBetween(a: CpuTicks | null, b: CpuTicks | null): { stealPct: number | null; load1: number } {
  const dt = a && b ? b.total - a.total : 0;
  return { stealPct: a && b && dt > 0 ? (100 * (b.steal - a.steal)) / dt : null, load1: os.loadavg()[0] };
}
