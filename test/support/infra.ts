import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const INFRA = fileURLToPath(new URL('../../hack/infra.sh', import.meta.url));
const run = promisify(execFile);

/** Stops, starts or restarts one local service through hack/infra.sh (fault-injection tests). */
export async function infra(action: 'stop' | 'start' | 'restart', service: 'postgres' | 'redis' | 'nats' | 'kafka'): Promise<void> {
  await run('bash', [INFRA, action, service], { timeout: 180_000 });
}
