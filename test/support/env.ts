import { loadConfig, type Config } from '../../src/config.js';

/**
 * Integration tests run against the real services that `hack/infra.sh up` started; `hack/test.sh`
 * exports their addresses (`hack/infra.sh env`). This refuses to aim a test anywhere but loopback.
 */
export function testConfig(overrides: Record<string, string> = {}): Config {
  const config = loadConfig(
    { ...process.env, LOG_LEVEL: process.env['LOG_LEVEL'] ?? 'silent', ...overrides },
    { hostname: 'test', pid: process.pid },
  );
  const hosts = [
    new URL(config.databaseUrl).hostname,
    new URL(config.redisUrl).hostname,
    ...config.natsUrl.split(',').map((u) => new URL(u).hostname),
    ...config.kafkaBrokers.map((b) => b.split(':')[0] ?? ''),
  ];
  for (const host of hosts) {
    if (!isLoopback(host)) throw new Error(`integration tests only talk to loopback, refusing ${host}`);
  }
  return config;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The admin kubeconfig of the local API server (`hack/infra.sh env` exports KUBECONFIG). */
export function kubeconfigPath(): string {
  const path = process.env['KUBECONFIG'];
  if (!path) throw new Error('KUBECONFIG is not set: run the tests through `npm test` (hack/test.sh), which exports `hack/infra.sh env`');
  return path;
}

/** A name unique to this test run, for topics, namespaces and event ids. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/**
 * An environment whose services are nowhere: port 1 on loopback, where every connection is refused
 * at once (for the tests of what a command does when it cannot reach them).
 */
export const NOWHERE_ENV = {
  DATABASE_URL: 'postgres://nobody:nothing@127.0.0.1:1/none',
  REDIS_URL: 'redis://127.0.0.1:1',
  NATS_URL: 'nats://127.0.0.1:1',
  KAFKA_BROKERS: '127.0.0.1:1',
} as const;

/** NOWHERE_ENV for a `sentinel` process a test starts: any free probe port, not tied to the test's pid, quiet. */
export const NOWHERE_CLI_ENV = {
  ...NOWHERE_ENV,
  SENTINEL_HTTP_PORT: '0',
  SENTINEL_EXIT_WITH_PARENT: '0',
  LOG_LEVEL: 'silent',
} as const;
