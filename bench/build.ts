/**
 * The benchmarks measure the build that ships: `tsc -p tsconfig.build.json` into dist/, exactly
 * as the container image is built, then every server process (engines, ingresses, the seed design,
 * the no-op ceiling) runs the compiled JavaScript with the servers' V8 settings.
 *
 * Why not through tsx, like the tests: its esbuild transform keeps function names by wrapping
 * every function it creates in a `__name(fn, "name")` call — a property definition each time a
 * closure is created, i.e. several per request — and it turns on source maps for stack traces.
 * Neither happens in production, so neither belongs in the figures (ADR 0008, decision 14).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { SERVER_NODE_FLAGS } from '../src/jobs/local-stack.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

export interface CompiledBuild {
  /** argv that runs `sentinel` from the build: node, the servers' flags, dist/cli/main.js. */
  readonly sentinel: readonly string[];
  /** argv that runs a baseline server from the build; append `seed|noop --port N`. */
  readonly baseline: readonly string[];
}

/**
 * Compiles src/ into dist/ (a few seconds) and says how to run it. With `profileDir`, every
 * process started from the build writes a V8 CPU profile there when it exits (one file per pid).
 */
export function compileForBench(profileDir?: string): CompiledBuild {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  const dist = (path: string) => fileURLToPath(new URL(`../dist/${path}`, import.meta.url));
  const flags = [...SERVER_NODE_FLAGS, ...(profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profileDir}`])];
  return {
    sentinel: [process.execPath, ...flags, dist('cli/main.js')],
    baseline: [process.execPath, ...flags, dist('seed/serve.js')],
  };
}

/**
 * Starts one server of the build: `command` is one of a build's argvs, `args` its own arguments,
 * `nodeFlags` extra V8 flags (profiling). Logs at warn; each line it prints on stderr goes to `say`.
 */
export function startServer(
  name: string,
  command: readonly string[],
  args: readonly string[],
  options: { env?: Record<string, string>; nodeFlags?: readonly string[]; say: (line: string) => void },
): ChildProcess {
  const [node, ...rest] = command;
  const child = spawn(node!, [...(options.nodeFlags ?? []), ...rest, ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'warn', ...options.env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (chunk: Buffer) => options.say(`[${name}] ${chunk.toString().trimEnd()}`));
  return child;
}
