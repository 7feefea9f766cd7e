import t from 'tap';
import {
  assertTokenConfig,
  loadConfig,
  parsePort,
  urlForDisplay,
  DEVELOPMENT_JWT_SECRET,
  LEASE_TTL_MS_RANGE,
  LOG_LEVELS,
} from '../../src/config.js';
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

t.test('LOG_LEVEL is one of pino’s levels (or silent), checked here rather than by pino with a stack', async (t) => {
  t.throws(
    () => loadConfig({ LOG_LEVEL: 'inof' }),
    new ConfigError('LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent, got "inof"'),
  );
  t.throws(() => loadConfig({ LOG_LEVEL: 'INFO' }), /LOG_LEVEL must be one of/, 'pino’s names are lower case');
  for (const level of LOG_LEVELS) t.equal(loadConfig({ LOG_LEVEL: level }).logLevel, level, level);
  t.equal(loadConfig({}).logLevel, 'info');
});

t.test('every port — variable or flag — is an integer in [0, 65535], by one rule', async (t) => {
  t.throws(
    () => loadConfig({ SENTINEL_HTTP_PORT: '70000' }),
    new ConfigError('SENTINEL_HTTP_PORT must be a port, an integer in [0, 65535], got "70000"'),
  );
  t.throws(() => loadConfig({ SENTINEL_INGRESS_PORT: '65536' }), /SENTINEL_INGRESS_PORT must be a port, an integer in \[0, 65535\]/);
  t.throws(() => loadConfig({ SENTINEL_HTTP_PORT: '1e3' }), /SENTINEL_HTTP_PORT must be a port/, 'digits only');
  t.equal(loadConfig({ SENTINEL_HTTP_PORT: '65535', SENTINEL_INGRESS_PORT: '0' }).httpPort, 65535);
  t.equal(parsePort('8080', '--port'), 8080);
  t.equal(parsePort('0', '--port'), 0, '0: any free port');
  for (const bad of ['70000', '65536', '-1', '', ' ', '80.5', '0x50', 'http']) {
    t.throws(
      () => parsePort(bad, '--port'),
      new ConfigError(`--port must be a port, an integer in [0, 65535], got ${JSON.stringify(bad)}`),
      bad,
    );
  }
});

t.test('every NATS_URL entry is checked, not only the first', async (t) => {
  t.equal(loadConfig({ NATS_URL: 'nats://a:4222,tls://b:4222' }).natsUrl, 'nats://a:4222,tls://b:4222');
  t.equal(loadConfig({ NATS_URL: 'nats://a:4222,b:4222' }).natsUrl, 'nats://a:4222,b:4222', 'host:port, as the NATS client takes it');
  t.throws(() => loadConfig({ NATS_URL: 'nats://a:4222,not a url' }), new ConfigError('NATS_URL entry is not a URL: "not a url"'));
  t.throws(
    () => loadConfig({ NATS_URL: 'nats://a:4222,http://b' }),
    new ConfigError('NATS_URL entry "http://b/" must use nats: or tls:, got http:'),
  );
  t.throws(() => loadConfig({ NATS_URL: 'nats://a:4222,' }), /NATS_URL has an empty entry/);
});

t.test('SENTINEL_JWKS_URL is an absolute http(s) URL', async (t) => {
  for (const bad of ['jwks.example.com', '/jwks.json', 'ftp://example.com/jwks', 'file:///etc/jwks.json']) {
    t.throws(
      () => loadConfig({ SENTINEL_JWKS_URL: bad }),
      new ConfigError(
        `SENTINEL_JWKS_URL must be an absolute http: or https: URL (like https://issuer.example/.well-known/jwks.json), got ${JSON.stringify(bad)}`,
      ),
      bad,
    );
  }
  t.equal(loadConfig({ SENTINEL_JWKS_URL: 'https://issuer.example/jwks' }).jwksUrl, 'https://issuer.example/jwks');
  t.equal(loadConfig({ SENTINEL_JWKS_URL: 'http://127.0.0.1:8080/jwks' }).jwksUrl, 'http://127.0.0.1:8080/jwks');
  t.equal(loadConfig({}).jwksUrl, '', 'unset: the HS256 secret');
});

t.test('the lease TTL range is one constant', async (t) => {
  t.same(LEASE_TTL_MS_RANGE, { min: 500, max: 600_000 });
  t.doesNotThrow(() => loadConfig({ SENTINEL_LEASE_TTL_MS: String(LEASE_TTL_MS_RANGE.min), SENTINEL_REBALANCE_INTERVAL_MS: '100' }));
  t.throws(
    () => loadConfig({ SENTINEL_LEASE_TTL_MS: String(LEASE_TTL_MS_RANGE.max + 1) }),
    /SENTINEL_LEASE_TTL_MS must be an integer in \[500, 600000\]/,
  );
});

t.test('a URL shown in a message or a log has no credentials', async (t) => {
  t.equal(urlForDisplay('redis://user:hunter2@127.0.0.1:6379/2'), 'redis://127.0.0.1:6379/2');
  t.equal(urlForDisplay('rediss://:hunter2@redis.example:6380'), 'rediss://redis.example:6380');
  t.equal(urlForDisplay('nats://token-hunter2@nats.example:4222'), 'nats://nats.example:4222');
  t.equal(urlForDisplay('redis://127.0.0.1:6379?password=hunter2'), 'redis://127.0.0.1:6379');
  t.equal(urlForDisplay('nats://127.0.0.1:4222'), 'nats://127.0.0.1:4222');
  t.equal(urlForDisplay('nats://user:hunter2@[bad'), 'nats://[bad', 'not a URL: still nothing before the @');
  t.equal(urlForDisplay('user:hunter2@nats.example:4222'), 'nats.example:4222', 'a host:port entry with credentials');
});

t.test('production refuses the development secret where tokens are verified', async (t) => {
  const production = loadConfig({ NODE_ENV: 'production' });
  t.throws(() => assertTokenConfig(production), /SENTINEL_JWT_SECRET or SENTINEL_JWKS_URL must be set/);
  t.doesNotThrow(() => assertTokenConfig(loadConfig({ NODE_ENV: 'production', SENTINEL_JWT_SECRET: 'x'.repeat(32) })));
  t.doesNotThrow(() => assertTokenConfig(loadConfig({ NODE_ENV: 'production', SENTINEL_JWKS_URL: 'https://127.0.0.1/jwks' })));
  t.doesNotThrow(() => assertTokenConfig(loadConfig({})), 'development mode allows the default');
});

t.test('production refuses the development secret where tokens are minted, JWKS or not', async (t) => {
  const refusal = /SENTINEL_JWT_SECRET must be set when NODE_ENV=production: tokens are signed with it/;
  t.throws(() => assertTokenConfig(loadConfig({ NODE_ENV: 'production' }), 'mint'), refusal);
  t.throws(() => assertTokenConfig(loadConfig({ NODE_ENV: 'production', SENTINEL_JWKS_URL: 'https://127.0.0.1/jwks' }), 'mint'), refusal);
  t.doesNotThrow(() => assertTokenConfig(loadConfig({ NODE_ENV: 'production', SENTINEL_JWT_SECRET: 'x'.repeat(32) }), 'mint'));
  t.doesNotThrow(() => assertTokenConfig(loadConfig({}), 'mint'), 'development mode allows the default');
});
