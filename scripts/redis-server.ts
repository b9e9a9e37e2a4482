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
  ) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  static async start(): Promise<RedisServer> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kvcake-redis-'));
    const s = new RedisServer(await freePort(), dir);
    await s.launch();
    return s;
  }

  private async launch(): Promise<void> {
    const proc = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, '--loglevel', 'warning', '--protected-mode', 'yes'],
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
