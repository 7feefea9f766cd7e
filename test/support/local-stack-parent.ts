/**
 * A job that owns a LocalStack, as chaos or the benchmarks do, for local-stack.test.ts: starts two
 * ingresses logging into the directory given as its argument, prints `{ "job": pid, "ingressPids": [a, b] }`
 * on a line, and then only waits — it ignores SIGINT (a terminal's Ctrl-C is for it alone, and
 * this one does nothing with it) until it is killed.
 */
import { LocalStack } from '../../src/jobs/local-stack.js';

const logDir = process.argv[2];
if (logDir === undefined) throw new Error('usage: local-stack-parent.ts LOG_DIR');
process.on('SIGINT', () => undefined);
const stack = new LocalStack({ env: { LOG_LEVEL: 'info' }, logDir });
const ingresses = [await stack.startIngress(), await stack.startIngress()];
process.stdout.write(`${JSON.stringify({ job: process.pid, ingressPids: ingresses.map((p) => p.pid) })}\n`);
setInterval(() => undefined, 60_000);
