/** Flag parsing shared by the CLI commands. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SentinelError } from '../errors.js';
import type { CommandContext } from './commands.js';

type FlagOptions = NonNullable<ParseArgsConfig['options']>;
type FlagValues<O extends FlagOptions> = ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true }>>['values'];

/**
 * A command's flags, parsed strictly. `--help` prints `help` and a usage error prints itself and
 * `help`; both come back as the exit code (0, 2) for the command to return.
 */
export function parseFlags<O extends FlagOptions>(
  context: Pick<CommandContext, 'argv' | 'stdout' | 'stderr'>,
  options: O,
  help: string,
): { values: FlagValues<O> } | { exit: number } {
  let values: FlagValues<O>;
  try {
    ({ values } = parseArgs({ args: [...context.argv], options, strict: true }));
  } catch (error) {
    context.stderr.write(`${(error as Error).message}\n\n${help}`);
    return { exit: 2 };
  }
  if ((values as { help?: boolean }).help) {
    context.stdout.write(help);
    return { exit: 0 };
  }
  return { values };
}

/**
 * A command's checks of its option values (durations, required flags, targets): a SentinelError
 * they throw is a usage error, printed with `help` (exit 2); anything else is a bug and propagates.
 */
export function checkFlags<T>(context: Pick<CommandContext, 'stderr'>, help: string, check: () => T): { value: T } | { exit: number } {
  try {
    return { value: check() };
  } catch (error) {
    if (!(error instanceof SentinelError)) throw error;
    context.stderr.write(`${error.message}\n\n${help}`);
    return { exit: 2 };
  }
}
