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
import { execFileSync } from 'node:child_process';
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

/** Compiles src/ into dist/ (a few seconds) and says how to run it. */
export function compileForBench(): CompiledBuild {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  execFileSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  const dist = (path: string) => fileURLToPath(new URL(`../dist/${path}`, import.meta.url));
  return {
    sentinel: [process.execPath, ...SERVER_NODE_FLAGS, dist('cli/main.js')],
    baseline: [process.execPath, ...SERVER_NODE_FLAGS, dist('seed/serve.js')],
  };
}
