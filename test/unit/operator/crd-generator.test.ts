import { readFile } from 'node:fs/promises';
import t from 'tap';
import { generatedFiles } from '../../../src/cli/generate.js';
import { schemaFromTypes, type JsonSchema } from '../../../src/operator/crd/schema-from-types.js';
import { buildTicketEventCrd, loadTicketEventCrd, TYPES_FILE } from '../../../src/operator/crd/ticket-event-crd.js';
import { toYaml } from '../../../src/operator/crd/yaml.js';

type Node = JsonSchema & { properties?: Record<string, Node>; items?: Node; required?: string[] };
const at = (schema: Node, ...path: string[]): Node =>
  path.reduce<Node>((node, key) => (key === '[]' ? (node.items as Node) : (node.properties?.[key] as Node)), schema);

t.test('doc comments and tags become the schema', async (t) => {
  const source = `
    /** @schemaType integer
     * @format int32 */
    type Int32 = number;
    /** The root.
     * @validation {"rule": "self.b >= self.a", "message": "b must not be below a"} */
    interface Root {
      /** First. Wrapped
       *  over lines.
       * @minimum 1
       * @default 3 */
      a: Int32;
      b: Int32;
      /**
       * Optional text.
       * @maxLength 5
       */
      c?: string;
      /** Kinds. */
      kind: 'x' | 'y';
      /** @listType map
       * @listMapKeys id */
      items: readonly Item[];
      labels?: Record<string, string>;
    }
    /** One item. */
    interface Item {
      /** @pattern ^[a-z]+$ */
      id: string;
    }
  `;
  const schema = schemaFromTypes(source, 'Root') as Node;
  t.equal(schema['description'], 'The root.');
  t.same(schema['x-kubernetes-validations'], [{ rule: 'self.b >= self.a', message: 'b must not be below a' }]);
  t.same(at(schema, 'a'), { description: 'First. Wrapped over lines.', type: 'integer', format: 'int32', default: 3, minimum: 1 });
  t.same(schema.required, ['b', 'kind', 'items'], 'optional and defaulted properties are not required');
  t.same(at(schema, 'kind')['enum'], ['x', 'y']);
  t.equal(at(schema, 'items')['x-kubernetes-list-type'], 'map');
  t.same(at(schema, 'items', '[]', 'id')['pattern'], '^[a-z]+$');
  t.same(at(schema, 'labels'), { type: 'object', additionalProperties: { type: 'string' } });
});

t.test('mistakes in the types fail loudly', async (t) => {
  t.throws(() => schemaFromTypes('interface R { a: Missing }', 'R'), /type Missing is not declared/);
  t.throws(() => schemaFromTypes('interface R {\n  /** @minimum lots */\n  a: number }', 'R'), /@minimum needs a number/);
  t.throws(() => schemaFromTypes('interface R {\n  /** @frobnicate */\n  a: number }', 'R'), /unknown tag @frobnicate/);
  t.throws(() => schemaFromTypes('interface R { /** @minimum 1 */ a: number }', 'R'), /ignored by TypeScript; put it on its own line/);
  t.throws(() => schemaFromTypes('/** @validation {"rule": "true"} */ interface R { a: number }', 'R'), /needs a human message/);
  t.throws(() => schemaFromTypes('interface R { a: R }', 'R'), /recursive/);
});

t.test('the TicketEvent CRD: structural, defaulted, bounded, with CEL, status subresource and printer columns', async (t) => {
  const crd = (await loadTicketEventCrd()) as { spec: { names: { shortNames: string[] }; versions: Node[] } };
  const version = crd.spec.versions[0] as Node & {
    subresources: unknown;
    additionalPrinterColumns: { name: string }[];
    schema: { openAPIV3Schema: Node };
  };
  t.same(version.subresources, { status: {} });
  t.same(
    version.additionalPrinterColumns.map((c) => c.name),
    ['Phase', 'Sold', 'Shards', 'Opens', 'Closes', 'Event', 'Age'],
  );
  t.ok(crd.spec.names.shortNames.includes('te'));
  const root = version.schema.openAPIV3Schema;
  const spec = at(root, 'spec');
  t.equal(at(spec, 'shardCount')['default'], 1);
  t.equal(at(spec, 'engine', 'replicas')['default'], 2);
  t.equal(at(spec, 'layout', 'sections', '[]', 'rows', '[]', 'seats')['minimum'], 1);
  t.match(JSON.stringify(spec['x-kubernetes-validations']), /shardCount must not exceed the number of rows plus pools/);
  t.match(JSON.stringify(at(spec, 'sale')['x-kubernetes-validations']), /closesAt must be after/);
  t.match(JSON.stringify(root['x-kubernetes-validations']), /metadata.name must not contain '--'/);
  t.same(at(root, 'status', 'phase')['enum'], ['Pending', 'Provisioning', 'OnSale', 'SoldOut', 'Closed', 'Failed']);
  // Structural: every node says its type (or is int-or-string), every validation has a message.
  const problems: string[] = [];
  const walk = (node: Node, path: string): void => {
    if (node['type'] === undefined && node['x-kubernetes-int-or-string'] !== true) problems.push(`${path} has no type`);
    for (const rule of (node['x-kubernetes-validations'] as { message?: string }[] | undefined) ?? [])
      if (!rule.message) problems.push(`${path} rule without message`);
    for (const [key, child] of Object.entries(node.properties ?? {})) walk(child, `${path}.${key}`);
    if (node.items) walk(node.items, `${path}[]`);
  };
  walk(root, '');
  t.same(problems, []);
});

t.test('the committed CRDs are what the generator produces now', async (t) => {
  for (const file of await generatedFiles()) {
    const committed = await readFile(file.path, 'utf8').catch(() => '');
    t.equal(committed, file.content, `${file.path} is up to date (npm run generate)`);
  }
});

t.test('generation is deterministic', async (t) => {
  const source = await readFile(TYPES_FILE, 'utf8');
  t.equal(toYaml(buildTicketEventCrd(source)), toYaml(buildTicketEventCrd(source)));
});

t.test('yaml emitter quotes what could be misread', async (t) => {
  t.equal(
    toYaml({ a: 'true', b: 'plain', c: '1', d: 'a: b', e: [], f: {}, g: [{ x: 1, w: ['z'] }] }),
    ['a: "true"', 'b: plain', 'c: "1"', 'd: "a: b"', 'e: []', 'f: {}', 'g:', '  - x: 1', '    w:', '      - z', ''].join('\n'),
  );
});
