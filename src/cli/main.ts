import { hostname } from 'node:os';
import { loadConfig } from '../config.js';
import { ConfigError, errorLine, SentinelError } from '../errors.js';
import { createRootLogger } from '../log.js';
import { commands, type Command, type CommandContext } from './commands.js';

function usage(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return ['Usage: sentinel <command> [options]', '', 'Commands:', ...lines, '', 'Run `sentinel <command> --help` for its options.'].join(
    '\n',
  );
}

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`sentinel: unknown command ${JSON.stringify(name)}\n\n${usage()}\n`);
    return 2;
  }
  if (command.errorExit === undefined) return run(name, command, rest);
  // verify and chaos: 1 is a violation, so an error that stops them is not 1 (Command.errorExit).
  try {
    return await run(name, command, rest);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`sentinel: ${error.code}: ${error.message}\n`);
      return 2;
    }
    const debug = /^(debug|trace)$/i.test(process.env['LOG_LEVEL'] ?? '');
    const stack = error instanceof Error ? error.stack : undefined;
    process.stderr.write(`${name}: not judged: ${errorLine(error)}${stack && !debug ? ' (LOG_LEVEL=debug prints the stack)' : ''}\n`);
    if (stack && debug) process.stderr.write(`${stack}\n`);
    return command.errorExit;
  }
}

async function run(name: string, command: Command, rest: readonly string[]): Promise<number> {
  const config = loadConfig(process.env, { hostname: hostname(), pid: process.pid });
  // Owned by a job (LocalStack): the terminal's Ctrl-C, which reaches the job's whole process
  // group, is for the job — it stops this process in order, or kills it. From the start, so a
  // Ctrl-C during start-up does not kill it either. (untilSignal then listens for SIGTERM alone.)
  if (config.exitWithParent > 0) process.on('SIGINT', () => undefined);
  const log = createRootLogger({ level: config.logLevel, role: name });
  const context: CommandContext = { config, log, argv: rest, stdout: process.stdout, stderr: process.stderr };
  return command.run(context);
}

/**
 * How long a command that has returned its exit code may take to exit on its own. A client library
 * can leave a handle open past a clean stop — nats.js reconnecting through a link that drops every
 * packet kept a stopped engine alive for minutes (its shards handed off, its pools closed) — and a
 * process that does not exit holds up whatever waits for it: a pod's termination, a job's stop.
 */
const EXIT_BACKSTOP_MS = 5000;

function exitSoon(): void {
  setTimeout(() => process.exit(), EXIT_BACKSTOP_MS).unref();
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    exitSoon();
  },
  (error: unknown) => {
    const message =
      error instanceof SentinelError
        ? `${error.code}: ${error.message}`
        : error instanceof Error
          ? (error.stack ?? error.message)
          : String(error);
    process.stderr.write(`sentinel: ${message}\n`);
    process.exitCode = 1;
    exitSoon();
  },
);
