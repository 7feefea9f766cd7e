import t from 'tap';
import { StringCodec } from 'nats';
import { connectNats } from '../../../src/adapters/nats/connection.js';
import { silentLogger } from '../../../src/log.js';
import { testConfig, uniqueName } from '../../support/env.js';

t.test('nats: request/reply and a JetStream publish with ack', async (t) => {
  const nc = await connectNats({ url: testConfig().natsUrl, log: silentLogger, name: 'smoke' });
  t.teardown(() => nc.close());
  const sc = StringCodec();
  const subject = uniqueName('smoke');
  const sub = nc.subscribe(subject);
  void (async () => {
    for await (const m of sub) m.respond(sc.encode(`echo:${sc.decode(m.data)}`));
  })();
  const reply = await nc.request(subject, sc.encode('ping'), { timeout: 2000 });
  t.equal(sc.decode(reply.data), 'echo:ping');

  const jsm = await nc.jetstreamManager();
  const stream = uniqueName('SMOKE').replace(/-/g, '_');
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
  t.teardown(() => jsm.streams.delete(stream));
  const ack = await nc.jetstream().publish(`${stream}.one`, sc.encode('durable'));
  t.equal(ack.stream, stream);
  t.equal(ack.seq, 1);
  const stored = await jsm.streams.getMessage(stream, { seq: 1 });
  t.equal(sc.decode(stored.data), 'durable');
});
