import t from 'tap';
import { assertTokenConfig, loadConfig, DEVELOPMENT_JWT_SECRET } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

t.test('defaults point at the local infrastructure and are frozen', async (t) => {
  const config = loadConfig({}, { hostname: 'h', pid: 7 });
  t.equal(config.databaseUrl, 'postgres://sentinel:sentinel@127.0.0.1:15432/sentinel');
  t.same(config.kafkaBrokers, ['127.0.0.1:19092']);
  t.equal(config.engineId, 'h-7');
  t.equal(config.jwtSecret, DEVELOPMENT_JWT_SECRET);
  t.equal(config.ingressBacklog, 4096, "a listen backlog for a sale's opening, not Node's 511");
  t.equal(config.exitWithParent, 0, 'a process outlives its parent unless told otherwise');
  t.equal(loadConfig({ SENTINEL_EXIT_WITH_PARENT: '4242' }).exitWithParent, 4242);
  t.ok(Object.isFrozen(config));
});

t.test('bad values name the variable', async (t) => {
  t.throws(
    () => loadConfig({ SENTINEL_BATCH_WINDOW_MS: 'soon' }),
    new ConfigError('SENTINEL_BATCH_WINDOW_MS must be an integer in [0, 1000], got "soon"'),
  );
  t.throws(() => loadConfig({ SENTINEL_LEASE_TTL_MS: '10' }), /SENTINEL_LEASE_TTL_MS must be an integer/);
  t.throws(() => loadConfig({ DATABASE_URL: 'mysql://x' }), /DATABASE_URL must use postgres: or postgresql:/);
  t.throws(() => loadConfig({ REDIS_URL: 'not a url' }), /REDIS_URL is not a URL/);
  t.throws(() => loadConfig({ KAFKA_BROKERS: 'a:1,b' }), /KAFKA_BROKERS entry must be host:port, got "b"/);
  t.throws(() => loadConfig({ SENTINEL_INGRESS_BACKLOG: '0' }), /SENTINEL_INGRESS_BACKLOG must be an integer in \[1, 65535\]/);
  t.throws(
    () => loadConfig({ SENTINEL_REBALANCE_INTERVAL_MS: '3000' }),
    /SENTINEL_REBALANCE_INTERVAL_MS \(3000\) must be at most half of SENTINEL_LEASE_TTL_MS \(5000\)/,
  );
  t.doesNotThrow(() => loadConfig({ SENTINEL_REBALANCE_INTERVAL_MS: '2500' }));
  t.throws(() => loadConfig({ SENTINEL_EXIT_WITH_PARENT: 'yes' }), /SENTINEL_EXIT_WITH_PARENT must be an integer in \[0, 4194304\]/);
});

t.test('production refuses the development secret where tokens are verified', async (t) => {
  const production = loadConfig({ NODE_ENV: 'production' });
  t.throws(() => assertTokenConfig(production), /SENTINEL_JWT_SECRET or SENTINEL_JWKS_URL must be set/);
  t.doesNotThrow(() => assertTokenConfig(loadConfig({ NODE_ENV: 'production', SENTINEL_JWT_SECRET: 'x'.repeat(32) })));
  t.doesNotThrow(() => assertTokenConfig(loadConfig({ NODE_ENV: 'production', SENTINEL_JWKS_URL: 'https://127.0.0.1/jwks' })));
  t.doesNotThrow(() => assertTokenConfig(loadConfig({})), 'development mode allows the default');
});
