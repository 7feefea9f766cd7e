/**
 * The OpenAPI 3.1 document in `docs/openapi.json` is the source of truth for the API: the router is
 * built from its paths and operation ids, and requests are validated with its schemas (ajv, JSON
 * Schema 2020-12, the dialect of OpenAPI 3.1). What `/openapi.json` serves is what is enforced.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import type { ProblemFieldError } from './problems.js';

/** Where the document lives in the repository (and in the image, beside `dist/`). */
export const OPENAPI_PATH = new URL('../../docs/openapi.json', import.meta.url);

const SCHEMAS_ID = 'https://sentinel.dev/openapi/schemas';
const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

/** An OpenAPI document, typed only as far as this module reads it. */
export interface OpenApiDocument {
  readonly openapi: string;
  readonly paths: Record<string, Record<string, unknown>>;
  readonly components: { readonly schemas: Record<string, unknown>; readonly parameters?: Record<string, ParameterObject> };
  readonly [member: string]: unknown;
}

interface ParameterObject {
  readonly name: string;
  readonly in: 'path' | 'query' | 'header' | 'cookie';
  readonly required?: boolean;
  readonly schema: unknown;
}

interface OperationObject {
  readonly operationId: string;
  readonly parameters?: (ParameterObject | { $ref: string })[];
  readonly requestBody?: { readonly required?: boolean; readonly content: Record<string, { schema: unknown }> };
  readonly security?: unknown[];
}

/** Validates a value against a schema: the problems found, empty when it conforms. */
export type Checker = (data: unknown) => ProblemFieldError[];

/** One operation, with validators compiled from its schemas. */
export interface Operation {
  readonly operationId: string;
  readonly method: Uppercase<(typeof METHODS)[number]>;
  /** The OpenAPI path, `/v1/events/{event}/holds`. */
  readonly path: string;
  /** The same path in router syntax, `/v1/events/:event/holds`. */
  readonly routerPath: string;
  /** Whether the operation takes a body, and whether one is required. */
  readonly body: { readonly required: boolean; readonly check: Checker } | undefined;
  /** Checks path parameters (an object of strings); undefined when there are none. */
  readonly pathParams: Checker | undefined;
  /** Checks query parameters (an object of strings); undefined when there are none. */
  readonly queryParams: Checker | undefined;
  /** Header names (lower case) the operation requires. */
  readonly requiredHeaders: readonly string[];
  /** False for operations with `security: []` (health, metrics, the document itself). */
  readonly authenticated: boolean;
}

/** The document plus its compiled operations. */
export interface OpenApi {
  readonly document: OpenApiDocument;
  /** The document serialized once, as served. */
  readonly json: string;
  readonly operations: readonly Operation[];
  /**
   * Checks a response against what the document gives for (operation, status): the body against
   * its schema, and — when `headers` are given — that each header the API sets (RESPONSE_HEADERS)
   * which the response carries is declared there. The contract tests' oracle.
   */
  checkResponse(operationId: string, status: number, body: unknown, headers?: ResponseHeaders): ProblemFieldError[];
}

/** The headers of a response, as fetch's `Headers` offers them. */
export interface ResponseHeaders {
  get(name: string): string | null;
}

/** Headers the ingress sets on responses: each one a response carries must be declared for its status. */
export const RESPONSE_HEADERS = ['Location', 'Retry-After', 'Allow', 'WWW-Authenticate', 'Idempotent-Replayed', 'X-Request-Id'] as const;

/** Rewrites `#/components/schemas/X` to an absolute reference into the schema bundle. */
function absolutize(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(absolutize);
  if (value === null || typeof value !== 'object') return value;
  const out: Record<string, unknown> = {};
  for (const [key, member] of Object.entries(value)) {
    out[key] =
      key === '$ref' && typeof member === 'string' && member.startsWith('#/components/schemas/')
        ? `${SCHEMAS_ID}#/$defs/${member.slice(21)}`
        : absolutize(member);
  }
  return out;
}

function resolveParameter(document: OpenApiDocument, parameter: ParameterObject | { $ref: string }): ParameterObject {
  if (!('$ref' in parameter)) return parameter;
  const name = parameter.$ref.replace('#/components/parameters/', '');
  const resolved = document.components.parameters?.[name];
  if (!resolved) throw new Error(`openapi: unresolved parameter ${parameter.$ref}`);
  return resolved;
}

/** Loads and compiles the document; throws at startup if it is inconsistent. */
export function loadOpenApi(path: URL | string = OPENAPI_PATH): OpenApi {
  const json = readFileSync(path, 'utf8');
  const document = JSON.parse(json) as OpenApiDocument;
  if (!document.openapi.startsWith('3.1.')) throw new Error(`openapi: expected an OpenAPI 3.1 document, got ${document.openapi}`);
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false, coerceTypes: false, useDefaults: false });
  formats.default(ajv);
  ajv.addSchema({ $id: SCHEMAS_ID, $defs: absolutize(document.components.schemas) as Record<string, unknown> });

  const compileParams = (params: ParameterObject[], where: 'path' | 'query'): Checker | undefined => {
    if (params.length === 0) return undefined;
    const validate = ajv.compile({
      type: 'object',
      properties: Object.fromEntries(params.map((p) => [p.name, absolutize(p.schema)])),
      required: params.filter((p) => p.required === true).map((p) => p.name),
    });
    return (data) => (validate(data) ? [] : fieldErrors(validate.errors, `#/${where}`));
  };

  const operations: Operation[] = [];
  for (const [path, item] of Object.entries(document.paths)) {
    const shared = ((item['parameters'] as OperationObject['parameters']) ?? []).map((p) => resolveParameter(document, p));
    for (const method of METHODS) {
      const operation = item[method] as OperationObject | undefined;
      if (operation === undefined) continue;
      const params = [...shared, ...(operation.parameters ?? []).map((p) => resolveParameter(document, p))];
      const bodySchema = operation.requestBody?.content['application/json']?.schema;
      operations.push({
        operationId: operation.operationId,
        method: method.toUpperCase() as Operation['method'],
        path,
        routerPath: path.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1'),
        body:
          bodySchema === undefined
            ? undefined
            : { required: operation.requestBody?.required === true, check: schemaChecker(ajv, bodySchema, document.components.schemas) },
        pathParams: compileParams(
          params.filter((p) => p.in === 'path'),
          'path',
        ),
        queryParams: compileParams(
          params.filter((p) => p.in === 'query'),
          'query',
        ),
        requiredHeaders: params.filter((p) => p.in === 'header' && p.required === true).map((p) => p.name.toLowerCase()),
        authenticated: !(Array.isArray(operation.security) && operation.security.length === 0),
      });
    }
  }
  const responseCheckers = new Map<string, Checker>();
  const declaredHeaders = new Map<string, ReadonlySet<string>>();
  const checkResponse = (operationId: string, status: number, body: unknown, headers?: ResponseHeaders): ProblemFieldError[] => {
    const id = `${operationId} ${status}`;
    let checker = responseCheckers.get(id);
    if (checker === undefined) {
      const operation = Object.values(document.paths)
        .flatMap((item) => METHODS.map((m) => item[m] as (OperationObject & { responses: Record<string, unknown> }) | undefined))
        .find((o) => o?.operationId === operationId);
      if (operation === undefined) throw new Error(`openapi: no operation ${operationId}`);
      let response = operation.responses[String(status)] as
        { $ref?: string; content?: Record<string, { schema: unknown }>; headers?: Record<string, unknown> } | undefined;
      if (response?.$ref)
        response = (document.components as { responses?: Record<string, typeof response> }).responses?.[response.$ref.split('/').pop()!];
      if (response === undefined) return [{ pointer: '#', detail: `status ${status} is not documented for ${operationId}` }];
      declaredHeaders.set(id, new Set(Object.keys(response.headers ?? {}).map((name) => name.toLowerCase())));
      const schema = response.content?.['application/json']?.schema ?? response.content?.['application/problem+json']?.schema;
      if (schema === undefined) {
        checker = (data) => (data === undefined ? [] : [{ pointer: '#', detail: 'no body is documented' }]);
      } else {
        const validate = ajv.compile(absolutize(schema) as object);
        checker = (data) => (validate(data) ? [] : fieldErrors(validate.errors));
      }
      responseCheckers.set(id, checker);
    }
    const errors = checker(body);
    if (headers !== undefined) {
      const declared = declaredHeaders.get(id)!;
      for (const name of RESPONSE_HEADERS) {
        if (headers.get(name) !== null && !declared.has(name.toLowerCase()))
          errors.push({ pointer: `#/header/${name}`, detail: `is sent but not declared for ${operationId} ${status}` });
      }
    }
    return errors;
  };
  return { document, json, operations, checkResponse };
}

function describeError(error: ErrorObject): string {
  switch (error.keyword) {
    case 'required':
      return 'is required';
    case 'additionalProperties':
    case 'unevaluatedProperties':
      return 'is not a known field';
    case 'type':
      return `must be ${String(error.params['type'])}`;
    case 'pattern':
      return `must match ${String(error.params['pattern'])}`;
    case 'minimum':
      return `must be ≥ ${String(error.params['limit'])}`;
    case 'maximum':
      return `must be ≤ ${String(error.params['limit'])}`;
    case 'minItems':
      return `must have at least ${String(error.params['limit'])} item(s)`;
    case 'maxItems':
      return `must have at most ${String(error.params['limit'])} items`;
    case 'uniqueItems':
      return `must not repeat items (items ${String(error.params['j'])} and ${String(error.params['i'])} are equal)`;
    default:
      return error.message ?? `fails ${error.keyword}`;
  }
}

/** RFC 6901 pointer of the field an error is about (the offending member for unknown/missing fields). */
function pointerOf(error: ErrorObject, prefix: string): string {
  let pointer = error.instancePath;
  const member =
    error.keyword === 'required'
      ? error.params['missingProperty']
      : error.keyword === 'additionalProperties'
        ? error.params['additionalProperty']
        : error.keyword === 'unevaluatedProperties'
          ? error.params['unevaluatedProperty']
          : undefined;
  if (typeof member === 'string') pointer += `/${member.replace(/~/g, '~0').replace(/\//g, '~1')}`;
  return prefix + pointer;
}

/** Turns ajv errors into the problem's `errors` list: URI-fragment JSON pointers, `#/…` into the body, `#/path/…`, `#/query/…` for parameters. */
export function fieldErrors(errors: readonly ErrorObject[] | null | undefined, prefix = '#'): ProblemFieldError[] {
  if (!errors || errors.length === 0) return [];
  const seen = new Set<string>();
  const out: ProblemFieldError[] = [];
  for (const error of errors) {
    const entry = { pointer: pointerOf(error, prefix), detail: describeError(error) };
    const id = `${entry.pointer} ${entry.detail}`;
    if (!seen.has(id)) {
      seen.add(id);
      out.push(entry);
    }
  }
  return out;
}

interface Branch {
  readonly validate: ValidateFunction;
  readonly properties: ReadonlySet<string>;
  readonly required: readonly string[];
}

/**
 * A checker for one schema. A top-level `oneOf` of object schemas gets special care: ajv reports
 * the errors of every branch, but a client wants those of the form it meant — the branch that
 * knows most of the members it sent (then the one with the fewest errors). A body that names no
 * member of any branch is told the forms it may take.
 */
function schemaChecker(ajv: Ajv2020, schema: unknown, defs: Record<string, unknown>): Checker {
  const validate = ajv.compile(absolutize(schema) as object);
  const resolved = resolveSchema(schema, defs);
  const oneOf = Array.isArray(resolved?.['oneOf']) ? (resolved['oneOf'] as unknown[]) : undefined;
  const branches: Branch[] | undefined = oneOf?.map((branch) => {
    const b = resolveSchema(branch, defs) ?? {};
    return {
      validate: ajv.compile(absolutize(branch) as object),
      properties: new Set(Object.keys((b['properties'] as Record<string, unknown> | undefined) ?? {})),
      required: (b['required'] as string[] | undefined) ?? [],
    };
  });
  return (data) => {
    if (validate(data)) return [];
    if (branches === undefined || data === null || typeof data !== 'object' || Array.isArray(data)) {
      if (branches !== undefined) return [{ pointer: '#', detail: 'must be an object' }];
      return fieldErrors(validate.errors);
    }
    const keys = Object.keys(data);
    let best: { branch: Branch; known: number; errors: ProblemFieldError[] } | undefined;
    for (const branch of branches) {
      branch.validate(data);
      const errors = fieldErrors(branch.validate.errors);
      const known = keys.filter((k) => branch.properties.has(k)).length;
      if (best === undefined || known > best.known || (known === best.known && errors.length < best.errors.length))
        best = { branch, known, errors };
    }
    if (best === undefined || best.known === 0) {
      const forms = branches.map((b) => `{${b.required.map((r) => JSON.stringify(r)).join(', ')}}`).join(', ');
      return [{ pointer: '#', detail: `must have the members of exactly one of: ${forms}` }];
    }
    return best.errors;
  };
}

function resolveSchema(schema: unknown, defs: Record<string, unknown>): Record<string, unknown> | undefined {
  let current = schema as Record<string, unknown> | undefined;
  for (let depth = 0; depth < 8 && typeof current?.['$ref'] === 'string'; depth++) {
    current = defs[(current['$ref'] as string).replace('#/components/schemas/', '')] as Record<string, unknown> | undefined;
  }
  return current;
}
