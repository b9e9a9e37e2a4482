// Server-sent events on a raw ServerResponse, as OpenAI streams them: `data: <json>\n\n`
// per chunk and `data: [DONE]` at the end. Writes respect backpressure: a slow reader
// makes send() wait for 'drain' instead of buffering the whole stream in memory; a reader
// that goes away ends every pending wait.
import type { ServerResponse } from 'node:http';

export class SseWriter {
  private started = false;

  constructor(private readonly res: ServerResponse) {}

  /** The client is gone or the stream has ended. */
  get closed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    this.res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      // Tells nginx-style proxies not to buffer the stream.
      'x-accel-buffering': 'no',
    });
  }

  private async write(s: string): Promise<void> {
    if (this.closed) throw new Error('client disconnected');
    this.start();
    if (this.res.write(s)) return;
    await new Promise<void>((resolve, reject) => {
      const done = () => {
        this.res.off('drain', done);
        this.res.off('close', gone);
        resolve();
      };
      const gone = () => {
        this.res.off('drain', done);
        this.res.off('close', gone);
        reject(new Error('client disconnected'));
      };
      this.res.on('drain', done);
      this.res.on('close', gone);
    });
  }

  send(obj: unknown): Promise<void> {
    return this.write(`data: ${JSON.stringify(obj)}\n\n`);
  }

  /** An error after the stream began (OpenAI's clients read `error` from a data event). */
  async error(body: unknown): Promise<void> {
    await this.send(body);
    await this.done();
  }

  async done(): Promise<void> {
    await this.write('data: [DONE]\n\n');
    this.end();
  }

  end(): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    this.start();
    this.res.end();
  }
}
