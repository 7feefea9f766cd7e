/** Invalid manifests are refused by the API server itself (schema and CEL), with messages a person understands. */
import t from 'tap';
import { ticketEvent } from '../../unit/operator/fixtures.js';
import { cluster, kubectl, testNamespace } from './harness.js';

interface Manifest {
  name: string;
  spec: Record<string, unknown>;
}

/** The unit tests' TicketEvent (a layout of two rows and a pool, three shards), as a person would write it. */
const valid = (): Manifest => ({ name: 'valid', spec: structuredClone(ticketEvent().spec) as unknown as Record<string, unknown> });

const yaml = (m: Manifest): string =>
  JSON.stringify({ apiVersion: 'sentinel.dev/v1alpha1', kind: 'TicketEvent', metadata: { name: m.name }, spec: m.spec });

const cases: { what: string; mutate: (m: Manifest) => void; messages: RegExp[] }[] = [
  {
    what: 'the sale closes before it opens',
    mutate: (m) => (m.spec['sale'] = { opensAt: '2030-01-03T00:00:00Z', closesAt: '2030-01-02T00:00:00Z' }),
    messages: [/spec\.sale\.closesAt: Invalid value: .*sale\.closesAt must be after sale\.opensAt/],
  },
  {
    what: 'more shards than rows and pools',
    mutate: (m) => (m.spec['shardCount'] = 4),
    messages: [/spec\.shardCount: Invalid value: .*shardCount must not exceed the number of rows plus pools in the layout/],
  },
  {
    what: 'nothing to sell',
    mutate: (m) => {
      m.spec['layout'] = {};
      m.spec['shardCount'] = 1;
    },
    messages: [/layout must have at least one section or pool: there is nothing to sell/],
  },
  {
    what: 'a pool reusing a section id',
    mutate: (m) => ((m.spec['layout'] as { pools: unknown[] }).pools = [{ id: 'A', capacity: 5 }]),
    messages: [/a pool must not have the same id as a section/],
  },
  {
    what: 'schema violations, all reported at once',
    mutate: (m) => {
      m.spec['layout'] = {
        sections: [
          {
            id: 'A-1',
            rows: [
              { id: '1', seats: 0 },
              { id: '1', seats: 3 },
            ],
          },
        ],
      };
      m.spec['holdTtlSeconds'] = 5;
      m.spec['engine'] = { logLevel: 'loud', replicas: -1 };
      delete m.spec['displayName'];
      m.spec['shardCount'] = 1;
    },
    messages: [
      /spec\.displayName: Required value/,
      /spec\.holdTtlSeconds: Invalid value: 5: .*should be greater than or equal to 30/,
      /spec\.layout\.sections\[0\]\.id: Invalid value: "A-1": .*should match '\^\[A-Za-z0-9\]\+\$'/,
      /spec\.layout\.sections\[0\]\.rows\[0\]\.seats: Invalid value: 0: .*greater than or equal to 1/,
      /spec\.layout\.sections\[0\]\.rows\[1\]: Duplicate value: \{"id":"1"\}/,
      /spec\.engine\.logLevel: Unsupported value: "loud"/,
      /spec\.engine\.replicas: Invalid value: -1/,
    ],
  },
  {
    what: 'a malformed date',
    mutate: (m) => (m.spec['sale'] = { opensAt: 'tomorrow', closesAt: '2030-01-02T18:00:00Z' }),
    messages: [/spec\.sale\.opensAt: Invalid value: "tomorrow": .*must be of type date-time/],
  },
  {
    what: "a name with '--' (it separates namespace and name in the event id)",
    mutate: (m) => (m.name = 'arena--night'),
    messages: [/metadata\.name must not contain '--'/],
  },
  {
    what: 'a name too long for child object names',
    mutate: (m) => (m.name = `n${'x'.repeat(45)}`),
    messages: [/metadata\.name must be at most 40 characters/],
  },
  {
    what: 'a name that is not a DNS label',
    mutate: (m) => (m.name = '9.lives'),
    messages: [/metadata\.name must be a DNS label/],
  },
];

t.test('the API server refuses bad TicketEvents with readable messages', async (t) => {
  const c = await cluster();
  const { namespace, cleanup } = await testNamespace(c, 'op-valid');
  t.teardown(cleanup);

  const ok = await kubectl(['apply', '-n', namespace, '--dry-run=server', '-f', '-'], yaml(valid()));
  t.equal(ok.code, 0, `the valid manifest is accepted: ${ok.stderr}`);

  for (const { what, mutate, messages } of cases) {
    const manifest = valid();
    mutate(manifest);
    // A real create, not a dry run: nothing must be stored.
    const result = await kubectl(['create', '-n', namespace, '-f', '-'], yaml(manifest));
    t.not(result.code, 0, `refused: ${what}`);
    t.match(result.stderr, /The TicketEvent ".*" is invalid/, `${what}: says which object`);
    for (const message of messages) t.match(result.stderr, message, `${what}: ${message.source}`);
  }
  const stored = await kubectl(['get', 'te', '-n', namespace, '-o', 'name']);
  t.equal(stored.stdout.trim(), '', 'none of them was stored');
});
