/**
 * A job that owns a LocalStack, as chaos or the benchmarks do, for local-stack.test.ts: starts one
 * ingress, prints `{ "ingressPid": … }` on a line, and then only waits — it ignores SIGINT (a
 * terminal's Ctrl-C is for it alone, and this one does nothing with it) until it is killed.
 */
import { LocalStack } from '../../src/jobs/local-stack.js';

const stack = new LocalStack({ env: { LOG_LEVEL: 'info' } });
const ingress = await stack.startIngress();
process.on('SIGINT', () => undefined);
process.stdout.write(`${JSON.stringify({ ingressPid: ingress.pid })}\n`);
ingress.child.stdout?.on('data', (chunk: Buffer) => process.stdout.write(chunk));
setInterval(() => undefined, 60_000);
