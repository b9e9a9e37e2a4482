// A real redis-server for the store's tests and benchmarks: started on a free loopback
// port in a temp directory (no persistence), stopped after. When the binary is missing,
// the tests that need it are skipped with the reason printed once (.ci/run installs
// Debian's redis-server).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

let printed = false;

/** Why Redis tests cannot run here, or undefined when they can. */
export function redisSkipReason(): string | undefined {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'redis-server is not installed (apt-get install -y redis-server)';
  return undefined;
}

export function printRedisSkip(reason: string): void {
  if (printed) return;
  printed = true;
  console.log(`\nkvcake store tests: Redis runs skipped: ${reason}`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

async function pingOnce(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
    sock.once('connect', () => sock.write('PING\r\n'));
  });
}

export class RedisServer {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly extra: string[],
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** Starts a server; `extra` are more redis-server options (e.g. cluster mode). */
  static async start(extra: string[] = []): Promise<RedisServer> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kvcake-redis-'));
    const s = new RedisServer(await freePort(), dir, extra);
    await s.launch();
    return s;
  }

  private async launch(): Promise<void> {
    const proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--loglevel', 'warning', '--protected-mode', 'yes', ...this.extra],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.proc = proc;
    this.exited = new Promise((resolve) => proc.once('exit', () => resolve()));
    const deadline = Date.now() + 10_000;
    while (!(await pingOnce(this.port))) {
      if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server on port ${this.port} did not start`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Sends a signal (SIGKILL, SIGSTOP, SIGCONT) to the server. */
  signal(sig: NodeJS.Signals): void {
    this.proc?.kill(sig);
  }

  /** Kills the server and waits until it is gone. */
  async kill(): Promise<void> {
    this.proc?.kill('SIGKILL');
    await this.exited;
    this.proc = undefined;
  }

  /** Starts it again on the same port (after kill). */
  async restart(): Promise<void> {
    await this.launch();
  }

  async stop(): Promise<void> {
    if (this.proc) {
      this.proc.kill('SIGCONT');
      this.proc.kill('SIGTERM');
      await this.exited;
      this.proc = undefined;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A Redis Cluster of `masters` redis-servers on loopback ports (no replicas), for tests. */
export class RedisClusterServers {
  private constructor(readonly nodes: RedisServer[]) {}

  get rootUrl(): string {
    return this.nodes[0].url;
  }

  static async start(masters = 3): Promise<RedisClusterServers> {
    const nodes: RedisServer[] = [];
    try {
      for (let i = 0; i < masters; i++)
        nodes.push(await RedisServer.start(['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(await freePort())]));
      const r = spawnSync('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`redis-cli --cluster create failed: ${r.stderr || r.stdout}`);
      const deadline = Date.now() + 20_000;
      for (const n of nodes) {
        for (;;) {
          const info = spawnSync('redis-cli', ['-p', String(n.port), 'cluster', 'info'], { encoding: 'utf8' }).stdout;
          if (info.includes('cluster_state:ok')) break;
          if (Date.now() > deadline) throw new Error(`the cluster did not reach state ok: ${info}`);
          await new Promise((res) => setTimeout(res, 50));
        }
      }
      return new RedisClusterServers(nodes);
    } catch (err) {
      for (const n of nodes) await n.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    for (const n of this.nodes) await n.stop();
  }
}
