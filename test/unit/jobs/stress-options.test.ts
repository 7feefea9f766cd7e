/** `sentinel stress`'s flags turned into a run's options: the loop mode and its rate. */
import t from 'tap';
import { loadConfig } from '../../../src/config.js';
import { UsageError } from '../../../src/jobs/options.js';
import { stressOptionsFrom } from '../../../src/jobs/stress/cli.js';

const config = loadConfig({});
const options = (values: Parameters<typeof stressOptionsFrom>[0]) => stressOptionsFrom({ event: 'ev', log: 'none', ...values }, config);

t.test('--rate alone asks for an open loop at that rate; no flag, a closed loop', async (t) => {
  t.match(options({ rate: '300' }), { mode: 'open', rate: 300 }, 'it used to run closed loop, the rate ignored');
  t.match(options({}), { mode: 'closed', concurrency: 1000 });
  t.match(options({ mode: 'open' }), { mode: 'open', rate: 500 }, 'an open loop without --rate: 500 a second');
  t.match(options({ mode: 'open', rate: '20' }), { mode: 'open', rate: 20 });
});

t.test('--rate with --mode closed is bad usage, not a rate quietly ignored', async (t) => {
  t.throws(
    () => options({ mode: 'closed', rate: '300' }),
    new UsageError('--rate is the arrival rate of --mode open; a closed loop takes --concurrency'),
  );
});
