/**
 * The TicketEvent CustomResourceDefinition, built from the spec types in `../api/v1alpha1.ts`.
 * `src/cli/generate.ts` writes it to `crds/` and the chart; nothing else should.
 */
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { CATEGORIES, GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION } from '../api/v1alpha1.js';
import { schemaFromTypes, type JsonSchema } from './schema-from-types.js';

/** Where the spec types live; the generator reads this file's text. */
export const TYPES_FILE = fileURLToPath(new URL('../api/v1alpha1.ts', import.meta.url));

/** `kubectl get ticketevents` columns: phase, sold/total, shards, age (and more with `-o wide`). */
export const PRINTER_COLUMNS = [
  { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Where the sale stands.' },
  { name: 'Sold', type: 'string', jsonPath: '.status.summary.sold', description: 'Sold of total seats and places.' },
  { name: 'Shards', type: 'string', jsonPath: '.status.summary.shards', description: 'Shards owned by an engine, of the shard count.' },
  { name: 'Opens', type: 'string', jsonPath: '.spec.sale.opensAt', priority: 1, description: 'When the sale opens.' },
  { name: 'Closes', type: 'string', jsonPath: '.spec.sale.closesAt', priority: 1, description: 'When the sale closes.' },
  { name: 'Event', type: 'string', jsonPath: '.status.eventId', priority: 1, description: 'Event id in the inventory and the REST API.' },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
] as const;

/** The name of the CRD object. */
export const CRD_NAME = `${PLURAL}.${GROUP}`;

/** Builds the CRD object from the text of the types file. */
export function buildTicketEventCrd(typesSource: string): Record<string, unknown> {
  const schema: JsonSchema = schemaFromTypes(typesSource, 'TicketEvent', 'src/operator/api/v1alpha1.ts');
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: CRD_NAME,
      labels: { 'app.kubernetes.io/name': 'sentinel', 'app.kubernetes.io/part-of': 'sentinel' },
      annotations: { 'sentinel.dev/generated-from': 'src/operator/api/v1alpha1.ts (npm run generate; do not edit)' },
    },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: [...SHORT_NAMES],
        categories: [...CATEGORIES],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: PRINTER_COLUMNS.map((c) => ({ ...c })),
          schema: { openAPIV3Schema: schema },
        },
      ],
    },
  };
}

/** Reads the types file and builds the CRD. */
export async function loadTicketEventCrd(): Promise<Record<string, unknown>> {
  return buildTicketEventCrd(await readFile(TYPES_FILE, 'utf8'));
}
