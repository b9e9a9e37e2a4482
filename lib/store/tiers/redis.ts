// Redis tier: chunks shared by every server pointed at the same Redis (or Redis Cluster).
//
// Client: node-redis (@redis/client), not ioredis. Both are maintained by Redis, both return
// binary replies as Buffers, pipeline and speak to Cluster. node-redis is the one Redis
// recommends for new projects and where new server features land first; its core package
// has no dependencies, ships its own types, and pipelines automatically (commands issued in
// one tick leave in one socket write), which is what the store's concurrent chunk reads need.
//
// Layout: a chunk value (header and payload) is split into parts of partBytes (default 8
// MiB: large values stall a single-threaded Redis and its replicas), stored under
//   <prefix>:c1:{<64 hex key>}:<part>
// The braces are a Redis Cluster hash tag: every part of a chunk lives in one slot, so a
// chunk is written in one MULTI/EXEC (all parts appear at once) and read in one MGET on
// any deployment, while different chunks spread over the cluster's shards. The namespace
// is not in the Redis key (it is inside the chunk key already). Parts carry a TTL (SET PX),
// refreshed when a load hits.
//
// Failure handling: every call has a deadline (timeoutMs); a timeout or a lost connection
// turns the call into a miss and marks Redis down for backoffMs, during which calls miss at
// once instead of waiting (the engine computes those chunks). Commands are never queued
// while disconnected (disableOfflineQueue). The client reconnects by itself.
import { createClient, RESP_TYPES } from '@redis/client';
import type { ChunkSpec } from '../format.js';
import type { ChunkKey } from '../keys.js';

export interface RedisTierOptions {
  /** redis[s]://[[user]:password@]host[:port][/db]. Default: KVCAKE_REDIS_URL, else redis://127.0.0.1:6379. */
  url?: string;
  /**
   * A connected client you manage instead of a url: node-redis createClient() or
   * createCluster(). The store does not close it.
   */
  client?: RedisCommandClient;
  /** Key prefix, default 'kvcake' (no braces: they would change the hash tag). */
  keyPrefix?: string;
  /** Seconds a chunk lives without hits; 0 for no TTL. Default 86400. */
  ttlSeconds?: number;
  /** Bytes per stored part (default 8 MiB). All servers sharing a Redis must agree. */
  partBytes?: number;
  /** Deadline of one Redis call, ms (default 5000). */
  timeoutMs?: number;
  /** How long a failed Redis is skipped before calls try it again, ms (default 1000). */
  backoffMs?: number;
  /** Deadline for the first connection at open, ms (default 5000). */
  connectTimeoutMs?: number;
  /**
   * true (default): open fails when Redis cannot be reached. false: the store opens
   * without it, every Redis call misses until it is up, and the client keeps reconnecting.
   */
  required?: boolean;
}

/** The commands the tier uses, as node-redis clients and clusters provide them (Buffer replies). */
export interface RedisCommandClient {
  withTypeMapping(mapping: Record<number, unknown>): RedisCommandClient;
  mGet(keys: string[]): Promise<(Buffer | null)[]>;
  exists(keys: string | string[]): Promise<number>;
  unlink(keys: string | string[]): Promise<number>;
  multi(): RedisMulti;
  readonly isReady?: boolean;
}
interface RedisMulti {
  set(key: string, value: Buffer, options?: { PX?: number }): RedisMulti;
  pExpire(key: string, ms: number): RedisMulti;
  exec(): Promise<unknown>;
}

export interface RedisTierStats {
  available: boolean;
  hits: number;
  misses: number;
  puts: number;
  /** Calls that failed (a Redis error, a lost connection). */
  errors: number;
  timeouts: number;
  /** Calls skipped because Redis was down. */
  skipped: number;
}

type Log = (level: 'warn' | 'info', event: string, message: string) => void;

class RedisUnavailable extends Error {}

const DEFAULT_URL = 'redis://127.0.0.1:6379';

function redact(url: string): string {
  return url.replace(/\/\/([^@/]*)@/, '//***@');
}

export class RedisTier {
  readonly name = 'redis' as const;
  private readonly client: RedisCommandClient;
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly partBytes: number;
  private readonly parts: number;
  private readonly timeoutMs: number;
  private readonly backoffMs: number;
  private downUntil = 0;
  private readonly st: Omit<RedisTierStats, 'available'> = { hits: 0, misses: 0, puts: 0, errors: 0, timeouts: 0, skipped: 0 };

  private constructor(
    client: RedisCommandClient,
    private readonly owned: { close(): Promise<unknown>; destroy(): void } | undefined,
    opts: RedisTierOptions,
    spec: ChunkSpec,
    private readonly log: Log,
    readonly where: string,
  ) {
    this.client = client.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    this.prefix = opts.keyPrefix ?? 'kvcake';
    if (typeof this.prefix !== 'string' || /[{}]/.test(this.prefix)) throw new RangeError(`redis.keyPrefix must be a string without braces, got ${JSON.stringify(this.prefix)}`);
    const ttl = opts.ttlSeconds ?? 86400;
    if (!(Number.isFinite(ttl) && ttl >= 0)) throw new RangeError(`redis.ttlSeconds must be a number >= 0, got ${ttl}`);
    this.ttlMs = Math.round(ttl * 1000);
    this.partBytes = opts.partBytes ?? 8 * 2 ** 20;
    if (!(Number.isInteger(this.partBytes) && this.partBytes >= 4096)) throw new RangeError(`redis.partBytes must be an integer >= 4096, got ${this.partBytes}`);
    this.parts = Math.ceil(spec.valueBytes / this.partBytes);
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.backoffMs = opts.backoffMs ?? 1000;
    if (!(this.timeoutMs > 0)) throw new RangeError(`redis.timeoutMs must be > 0, got ${this.timeoutMs}`);
    if (!(this.backoffMs >= 0)) throw new RangeError(`redis.backoffMs must be >= 0, got ${this.backoffMs}`);
  }

  static async open(opts: RedisTierOptions, spec: ChunkSpec, log: Log): Promise<RedisTier> {
    if (opts.client) return new RedisTier(opts.client, undefined, opts, spec, log, 'the given client');
    const url = opts.url ?? process.env.KVCAKE_REDIS_URL ?? DEFAULT_URL;
    const required = opts.required ?? true;
    const connectTimeout = opts.connectTimeoutMs ?? 5000;
    const started = Date.now();
    let connected = false;
    const client = createClient({
      url,
      disableOfflineQueue: true,
      socket: {
        connectTimeout,
        // Before the first connection (required): retry until the connect deadline, then
        // give up so open() can say so. After it (or degraded): back off up to 2 s, forever.
        reconnectStrategy: (retries: number, cause: Error) => {
          if (!connected && required && Date.now() - started >= connectTimeout) return cause;
          return Math.min(50 * 2 ** Math.min(retries, 6), 2000);
        },
      },
    });
    let down = false;
    client.on('error', (err: Error) => {
      if (!down) log('warn', 'redis-down', `prefix store: Redis at ${redact(url)} is unreachable (${err.message}); loads from it miss until it is back`);
      down = true;
    });
    client.on('ready', () => {
      if (down) log('info', 'redis-up', `prefix store: Redis at ${redact(url)} is back`);
      down = false;
      connected = true;
    });
    const tier = new RedisTier(client as unknown as RedisCommandClient, client, opts, spec, log, redact(url));
    const connecting = client.connect().then(() => {
      connected = true;
    });
    if (!required) {
      connecting.catch(() => {});
      return tier;
    }
    try {
      await connecting;
    } catch (err) {
      client.destroy();
      throw new Error(
        `prefix store: cannot reach Redis at ${redact(url)} (${(err as Error).message}). Start it, point redis.url ` +
          `(or KVCAKE_REDIS_URL) at a reachable server, or pass redis.required = false to open without it`,
        { cause: err },
      );
    }
    return tier;
  }

  partKey(key: ChunkKey, part: number): string {
    return `${this.prefix}:c1:{${key}}:${part}`;
  }

  private partKeys(key: ChunkKey): string[] {
    return Array.from({ length: this.parts }, (_, i) => this.partKey(key, i));
  }

  get available(): boolean {
    return this.client.isReady !== false && Date.now() >= this.downUntil;
  }

  // One Redis call under the deadline. A command left behind by a timeout settles later
  // and is ignored.
  private async call<T>(f: () => Promise<T>): Promise<T> {
    if (!this.available) {
      this.st.skipped++;
      throw new RedisUnavailable('Redis is down');
    }
    const p = f();
    p.catch(() => {});
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no reply within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      return await Promise.race([p, deadline]);
    } catch (err) {
      if ((err as Error).message.startsWith('no reply within')) this.st.timeouts++;
      else this.st.errors++;
      this.downUntil = Date.now() + this.backoffMs;
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Which of the keys Redis holds (false for all while it is down). */
  async has(keys: readonly ChunkKey[]): Promise<boolean[]> {
    if (keys.length === 0) return [];
    try {
      const r = await this.call(() => Promise.all(keys.map((k) => this.client.exists(this.partKey(k, 0)))));
      return r.map((n) => n > 0);
    } catch {
      return keys.map(() => false);
    }
  }

  /**
   * The chunk's value as its parts, or a reason it has none: 'missing' (absent, or some part
   * expired) or an error sentence.
   */
  async get(key: ChunkKey): Promise<{ value: Buffer[] } | { fault: 'missing' | 'io'; message: string }> {
    let parts: (Buffer | null)[];
    try {
      parts = await this.call(() => this.client.mGet(this.partKeys(key)));
    } catch (err) {
      return { fault: 'io', message: `redis ${key.slice(0, 12)}: io: ${(err as Error).message}` };
    }
    if (parts.some((p) => p === null)) {
      this.st.misses++;
      return { fault: 'missing', message: `redis ${key.slice(0, 12)}: missing: not in Redis` };
    }
    this.st.hits++;
    if (this.ttlMs > 0) this.touch(key);
    return { value: parts as Buffer[] };
  }

  private touch(key: ChunkKey): void {
    const m = this.client.multi();
    for (const k of this.partKeys(key)) m.pExpire(k, this.ttlMs);
    this.call(() => m.exec()).catch(() => {});
  }

  /** Stores a chunk value (all parts in one transaction). Rejects on a Redis failure. */
  async put(key: ChunkKey, value: Buffer): Promise<void> {
    const m = this.client.multi();
    for (let i = 0; i < this.parts; i++) {
      const part = value.subarray(i * this.partBytes, Math.min(value.length, (i + 1) * this.partBytes));
      m.set(this.partKey(key, i), part, this.ttlMs > 0 ? { PX: this.ttlMs } : undefined);
    }
    await this.call(() => m.exec());
    this.st.puts++;
  }

  /** Removes a chunk that failed verification (it would fail for every reader). */
  async delete(key: ChunkKey): Promise<void> {
    await this.call(() => this.client.unlink(this.partKeys(key))).catch(() => {});
  }

  stats(): RedisTierStats {
    return { available: this.available, ...this.st };
  }

  async close(): Promise<void> {
    if (!this.owned) return;
    try {
      await this.owned.close();
    } catch {
      this.owned.destroy();
    }
  }
}
