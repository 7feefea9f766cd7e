import t from 'tap';
import { engineDeployment, SETTINGS_HASH_ANNOTATION } from '../../../src/operator/children.js';
import { eventIdOf, eventIdProblem, objectKeyOfEventId } from '../../../src/operator/event-id.js';
import { eventSpecOf } from '../../../src/operator/event-spec.js';
import { flagsUsage, parseFlagDuration, parseOperatorFlags } from '../../../src/operator/flags.js';
import { ticketEvent } from './fixtures.js';

t.test('event ids are <namespace>--<name>, and the mapping is injective', async (t) => {
  t.equal(eventIdOf({ namespace: 'shows', name: 'arena-night' }), 'shows--arena-night');
  t.same(objectKeyOfEventId('shows--arena-night'), { namespace: 'shows', name: 'arena-night' });
  t.same(objectKeyOfEventId('a--b--c'), { namespace: 'a--b', name: 'c' }, 'names never contain --, so the last one splits');
  t.not(eventIdOf({ namespace: 'a-b', name: 'c' }), eventIdOf({ namespace: 'a', name: 'b-c' }));
  t.equal(objectKeyOfEventId('no-separator'), undefined);
  t.match(eventIdProblem({ namespace: 'n'.repeat(40), name: 'x'.repeat(30) }), /72 characters; the inventory allows 63/);
  t.match(eventIdProblem({ namespace: 'n', name: 'a--b' }), /must not contain '--'/);
});

t.test('eventSpecOf maps the spec and refuses what the schema cannot catch', async (t) => {
  const ok = eventSpecOf(ticketEvent());
  t.ok(ok.ok);
  if (ok.ok) {
    t.equal(ok.spec.eventId, 'shows--arena');
    t.equal(ok.spec.holdTtlMs, 600_000);
    t.same(ok.spec.saleOpensAt, new Date('2030-05-01T10:00:00Z'));
  }
  const tooManyShards = eventSpecOf(ticketEvent({ spec: { shardCount: 9 } }));
  t.match(tooManyShards, { ok: false, message: /spec.shardCount: shard count 9 exceeds the 3 rows and pools/ });
  const badLayout = eventSpecOf(ticketEvent({ spec: { layout: { sections: [{ id: 'A', rows: [{ id: '1', seats: 0 }] }], pools: [] } } }));
  t.match(badLayout, { ok: false, message: /spec.layout.sections\[0\].rows\[0\].seats/ });
});

t.test('flags parse durations, booleans and engine settings', async (t) => {
  const defaults = { identity: 'host-1', leaseNamespace: 'sentinel', watchNamespace: '', httpPort: 9464 };
  const flags = parseOperatorFlags(
    [
      '--lease-duration=3s',
      '--renew-deadline',
      '2s',
      '--retry-period=500ms',
      '--no-migrate',
      '--engine-image=repo/sentinel:1',
      '--workers=8',
    ],
    defaults,
  );
  t.equal(flags.settings.leaderElection.leaseDurationMs, 3000);
  t.equal(flags.settings.leaderElection.renewDeadlineMs, 2000);
  t.equal(flags.settings.leaderElection.retryPeriodMs, 500);
  t.equal(flags.settings.leaderElection.leaseNamespace, 'sentinel');
  t.equal(flags.settings.identity, 'host-1');
  t.equal(flags.migrate, false);
  t.equal(flags.settings.engine.image, 'repo/sentinel:1');
  t.equal(flags.settings.workers, 8);
  t.equal(parseFlagDuration('2m', 'x'), 120_000);
  t.throws(() => parseOperatorFlags(['--lease-duration=1s', '--renew-deadline=2s'], defaults), /lease-duration > --renew-deadline/);
  t.throws(() => parseOperatorFlags(['--frob'], defaults), /unknown flag --frob/);
  t.throws(() => parseOperatorFlags(['--resync=soon'], defaults), /--resync must be a duration/);
});

t.test('a duration flag needs its unit; 0, negative and overlong durations are refused', async (t) => {
  const defaults = { identity: 'host-1', leaseNamespace: 'sentinel', watchNamespace: '', httpPort: 9464 };
  t.equal(parseFlagDuration('120s', 'drain-timeout'), 120_000);
  t.equal(parseFlagDuration('1.5s', 'x'), 1500);
  t.equal(parseFlagDuration('250ms', 'x'), 250);
  const flags = parseOperatorFlags(['--drain-timeout', '2m', '--refresh-interval=5s', '--resync=10m', '--drain-poll=1s'], defaults);
  t.equal(flags.settings.drainTimeoutMs, 120_000);
  t.equal(flags.settings.refreshIntervalMs, 5000);
  t.equal(flags.settings.resyncMs, 600_000);
  t.equal(flags.settings.drainPollMs, 1000);
  // Milliseconds here until 2026-12-04, seconds in the jobs: a bare number is read neither way.
  t.throws(() => parseOperatorFlags(['--drain-timeout', '120'], defaults), {
    name: 'ConfigError',
    message: '--drain-timeout needs a unit: 120ms or 120s? (got "120")',
  });
  for (const zero of ['0s', '0ms', '0.0001s']) {
    t.throws(() => parseOperatorFlags([`--refresh-interval=${zero}`], defaults), {
      name: 'ConfigError',
      message: /--refresh-interval must be at least 1ms/,
    });
  }
  t.throws(() => parseOperatorFlags(['--resync=0'], defaults), { name: 'ConfigError', message: /--resync needs a unit/ });
  t.throws(() => parseOperatorFlags(['--drain-timeout', '-5s'], defaults), {
    name: 'ConfigError',
    message: /--drain-timeout must be a positive duration/,
  });
  t.throws(() => parseOperatorFlags(['--resync=1000h'], defaults), { name: 'ConfigError', message: /--resync must be at most 596h/ });
  t.equal(parseFlagDuration('596h', 'x'), 596 * 3_600_000);
  t.match(flagsUsage(), /with its unit/, '--help says so');
});

t.test('--engine-settings-hash goes onto the engine pod template, so a change of the shared settings rolls the engines', async (t) => {
  const defaults = { identity: 'host-1', leaseNamespace: 'sentinel', watchNamespace: '', httpPort: 9464 };
  const annotationsWith = (argv: string[]) => {
    const deployment = engineDeployment(ticketEvent(), parseOperatorFlags(argv, defaults).settings.engine) as unknown as {
      spec: { template: { metadata: { annotations: Record<string, string> } } };
    };
    return deployment.spec.template.metadata.annotations;
  };
  t.equal(annotationsWith(['--engine-settings-hash=3f2a'])[SETTINGS_HASH_ANNOTATION], '3f2a');
  t.notOk(SETTINGS_HASH_ANNOTATION in annotationsWith([]), 'none without the flag');
  t.not(
    annotationsWith(['--engine-settings-hash=3f2a'])[SETTINGS_HASH_ANNOTATION],
    annotationsWith(['--engine-settings-hash=77b0'])[SETTINGS_HASH_ANNOTATION],
  );
});
