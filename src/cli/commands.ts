import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { engineCommand } from './engine-command.js';
import { migrateCommand } from './migrate-command.js';
import { operatorCommand } from './operator-command.js';
import { ingressCommand } from './ingress-command.js';
import { tokenCommand } from './token-command.js';
import { stressCommand } from './stress-command.js';
import { verifyCommand } from './verify-command.js';
import { chaosCommand } from './chaos-command.js';

/** What every CLI command receives: validated config, the root logger, its own arguments. */
export interface CommandContext {
  readonly config: Config;
  readonly log: Logger;
  readonly argv: readonly string[];
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** One `sentinel <name>` command. `run` resolves to the process exit code. */
export interface Command {
  readonly summary: string;
  /**
   * The exit code of an error the command lets escape. Unset: 1, the error printed with its stack.
   * Set (verify, chaos: 3, "could not be judged" — their 1 means a violation): the error in one
   * line, its stack only at LOG_LEVEL debug or trace; a bad environment variable is bad usage (2).
   */
  readonly errorExit?: number;
  run(context: CommandContext): Promise<number>;
}

/** The registry of roles and jobs; each later capability adds its entry here. */
export const commands: Record<string, Command> = {
  migrate: migrateCommand,
  engine: engineCommand,
  ingress: ingressCommand,
  operator: operatorCommand,
  token: tokenCommand,
  stress: stressCommand,
  verify: verifyCommand,
  chaos: chaosCommand,
  version: {
    summary: 'print the version',
    async run({ stdout }) {
      stdout.write('sentinel 0.1.0\n');
      return 0;
    },
  },
};
