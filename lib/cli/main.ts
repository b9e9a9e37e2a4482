// The `kvcake` command: serve, bench-serve, report. Exit status: 0 done, 1 a failure while
// running (a model that does not load, an unreachable server), 2 a command line that
// cannot work.
import { Command, CommanderError } from 'commander';
import { UsageError } from './args.js';
import { benchServeCommand, reportCommand } from './bench-serve.js';
import { serveCommand } from './serve.js';

export async function main(argv: string[]): Promise<void> {
  const program = new Command('kvcake')
    .description('KV-cache management for LLM serving: an OpenAI-compatible server and a serving benchmark.')
    .exitOverride();
  for (const sub of [serveCommand(), benchServeCommand(), reportCommand()]) {
    program.addCommand(sub.exitOverride().showHelpAfterError('(run with --help for every option)'));
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander has printed the message (or the help) already.
      process.exitCode = err.exitCode === 0 ? 0 : 2;
      return;
    }
    console.error(`kvcake: ${(err as Error).message}`);
    process.exitCode = err instanceof UsageError ? 2 : 1;
  }
}
