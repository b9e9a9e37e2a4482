// A moving estimate of the bandwidth a store delivers: bytes over busy time (time with at
// least one read in flight), both decayed exponentially with the busy time that passes, so
// concurrent reads are measured as the throughput they reach together rather than each
// being charged the time it waited behind the others. Busy time counts once a read ends:
// while reads are in flight their bytes are not in yet, and charging their time early would
// make the estimate sag below the bandwidth mid-read (and a Cake split re-solved then would
// load chunks it should compute). The scheduler's Cake split reads it to decide how many
// chunks to load rather than compute.

export interface BandwidthMeterOptions {
  /** Busy seconds after which a sample weighs half (default 1). */
  halfLifeSeconds?: number;
  /** Clock in seconds (default performance.now() / 1000). */
  now?: () => number;
}

export class BandwidthMeter {
  private readonly halfLife: number;
  private readonly now: () => number;
  private inFlight = 0;
  private last = 0;
  private bytes = 0;
  private busy = 0;
  /** Busy seconds since the last read ended: charged when the next one ends. */
  private open = 0;
  private samples = 0;

  constructor(opts: BandwidthMeterOptions = {}) {
    this.halfLife = opts.halfLifeSeconds ?? 1;
    if (!(this.halfLife > 0)) throw new RangeError(`halfLifeSeconds must be > 0, got ${this.halfLife}`);
    this.now = opts.now ?? (() => performance.now() / 1000);
  }

  /** A read started. */
  begin(): void {
    this.advance();
    this.inFlight++;
  }

  /** A read that began ended, having moved `bytes` (0 for one that failed). */
  end(bytes: number): void {
    this.advance();
    this.inFlight = Math.max(0, this.inFlight - 1);
    this.busy += this.open;
    this.open = 0;
    if (bytes > 0) {
      this.bytes += bytes;
      this.samples++;
    }
  }

  /** Bytes per second, or undefined before any read completed. */
  estimate(): number | undefined {
    this.advance();
    return this.samples > 0 && this.busy > 0 ? this.bytes / this.busy : undefined;
  }

  private advance(): void {
    const t = this.now();
    const dt = t - this.last;
    this.last = t;
    if (this.inFlight === 0 || dt <= 0) return;
    const keep = Math.pow(0.5, dt / this.halfLife);
    this.bytes *= keep;
    this.busy *= keep;
    this.open = this.open * keep + dt;
  }
}
