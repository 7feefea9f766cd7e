import t from 'tap';
import { connectRedis, createRedis } from '../../../src/adapters/redis/client.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';

t.test('redis: set with TTL, get, expiry', async (t) => {
  const redis = createRedis({ url: testConfig().redisUrl, log: silentLogger });
  t.teardown(() => redis.quit());
  await connectRedis(redis);
  const key = uniqueName('smoke');
  t.equal(await redis.set(key, 'value', 'PX', 200), 'OK');
  t.equal(await redis.get(key), 'value');
  const ttl = await redis.pttl(key);
  t.ok(ttl > 0 && ttl <= 200, `ttl ${ttl} within (0, 200]`);
  await new Promise((r) => setTimeout(r, 300));
  t.equal(await redis.get(key), null, 'expired');
});
