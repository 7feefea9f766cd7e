import t from 'tap';
import fc from 'fast-check';
import { admissionRateOf, emissionIntervalUs, gcraDecide } from '../../../src/ingress/admission.js';

t.test('a quiet event admits a full burst at once, then one request per emission interval', async (t) => {
  const rate = { ratePerS: 10, burst: 3 };
  t.equal(emissionIntervalUs(rate), 100_000);
  let tat: number | undefined;
  const now = 1_000_000_000;
  for (let i = 0; i < 3; i++) {
    const d = gcraDecide(tat, now, rate);
    t.ok(d.admitted, `burst request ${i + 1} admitted`);
    tat = d.tatUs;
  }
  const refused = gcraDecide(tat, now, rate);
  t.notOk(refused.admitted, 'the request beyond the burst is refused');
  t.equal(refused.admitted ? 0 : refused.retryAfterUs, 100_000, 'and told to come back after one interval');
  t.equal(refused.tatUs, tat, 'a refusal does not move the TAT');
  t.notOk(gcraDecide(tat, now + 99_999, rate).admitted, 'one microsecond early is still refused');
  t.ok(gcraDecide(tat, now + 100_000, rate).admitted, 'on time is admitted');
});

t.test('an idle period refills the burst but never beyond it', async (t) => {
  const rate = { ratePerS: 100, burst: 5 };
  let tat: number | undefined;
  let now = 0;
  for (let i = 0; i < 5; i++) tat = gcraDecide(tat, now, rate).tatUs;
  now += 60_000_000; // a minute of silence
  let admitted = 0;
  for (let i = 0; i < 10; i++) {
    const d = gcraDecide(tat, now, rate);
    if (d.admitted) admitted++;
    tat = d.tatUs;
  }
  t.equal(admitted, 5);
});

t.test('burst is one second of the rate', async (t) => {
  t.same(admissionRateOf(200), { ratePerS: 200, burst: 200 });
  t.same(admissionRateOf(0.5), { ratePerS: 0.5, burst: 1 });
});

t.test('property: over any window, admitted ≤ burst + rate × window', async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 5000 }),
      fc.integer({ min: 1, max: 50 }),
      fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 1, maxLength: 400 }),
      (ratePerS, burst, gaps) => {
        const rate = { ratePerS, burst };
        const interval = emissionIntervalUs(rate);
        let tat: number | undefined;
        let now = 1_000_000;
        const admittedAt: number[] = [];
        for (const gap of gaps) {
          now += gap;
          const d = gcraDecide(tat, now, rate);
          tat = d.tatUs;
          if (d.admitted) admittedAt.push(now);
          else if (d.retryAfterUs <= 0) return false; // a refusal always names a wait
        }
        // For every window [admittedAt[i], admittedAt[j]]: j - i + 1 ≤ burst + (span / interval).
        for (let i = 0; i < admittedAt.length; i++) {
          for (let j = i; j < admittedAt.length; j++) {
            if (j - i + 1 > burst + Math.floor((admittedAt[j]! - admittedAt[i]!) / interval)) return false;
          }
        }
        return true;
      },
    ),
  );
  t.pass('bound holds');
});

t.test('property: a request refused with retryAfter is admitted exactly when it retries then', async (t) => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 1000 }),
      fc.integer({ min: 1, max: 20 }),
      fc.integer({ min: 1, max: 100 }),
      (ratePerS, burst, flood) => {
        const rate = { ratePerS, burst };
        let tat: number | undefined;
        const now = 5_000_000;
        let refusal: { retryAfterUs: number } | undefined;
        for (let i = 0; i < burst + flood; i++) {
          const d = gcraDecide(tat, now, rate);
          tat = d.tatUs;
          if (!d.admitted) refusal = d;
        }
        if (refusal === undefined) return false;
        return (
          !gcraDecide(tat, now + refusal.retryAfterUs - 1, rate).admitted && gcraDecide(tat, now + refusal.retryAfterUs, rate).admitted
        );
      },
    ),
  );
  t.pass('retry-after is exact');
});
