/**
 * Turns TypeScript interfaces with doc comments into a structural OpenAPI v3 schema, the way
 * controller-gen turns Go types with markers into CRDs. Syntax only: the file is parsed, never
 * type-checked, so the result depends on nothing but its text. The tags it understands are listed
 * at the top of `src/operator/api/v1alpha1.ts`.
 */
import ts from 'typescript';
import { SentinelError } from '../../errors.js';

/** A JSON schema node (OpenAPI v3 subset that Kubernetes accepts in structural schemas). */
export type JsonSchema = { [keyword: string]: unknown };

/** A problem in the source types that would produce a wrong schema. */
export class SchemaGenerationError extends SentinelError {
  constructor(message: string) {
    super('schema_generation_failed', message);
  }
}

interface Doc {
  readonly description: string | undefined;
  readonly tags: readonly { readonly name: string; readonly value: string }[];
}

const NUMBER_TAGS = new Set([
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'exclusiveMinimum',
  'exclusiveMaximum',
]);
const STRING_TAGS = new Set(['pattern', 'format']);
/** Tags that describe TypeScript or this file, not the schema. */
const IGNORED_TAGS = new Set(['see', 'example', 'deprecated', 'remarks']);

/** The order keywords appear in the output, so generated files read like hand-written CRDs. */
const KEY_ORDER = [
  'description',
  'type',
  'format',
  'enum',
  'default',
  'minimum',
  'exclusiveMinimum',
  'maximum',
  'exclusiveMaximum',
  'minLength',
  'maxLength',
  'pattern',
  'minItems',
  'maxItems',
  'anyOf',
  'items',
  'properties',
  'additionalProperties',
  'required',
  'x-kubernetes-int-or-string',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-list-type',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-validations',
];

/** Reads `source` (the text of a types file) and returns the schema of interface `root`. */
export function schemaFromTypes(source: string, root: string, fileName = 'types.ts'): JsonSchema {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const interfaces = new Map<string, ts.InterfaceDeclaration>();
  const aliases = new Map<string, ts.TypeAliasDeclaration>();
  for (const statement of file.statements) {
    if (ts.isInterfaceDeclaration(statement)) interfaces.set(statement.name.text, statement);
    else if (ts.isTypeAliasDeclaration(statement)) aliases.set(statement.name.text, statement);
  }
  const where = (node: ts.Node): string => {
    const { line } = file.getLineAndCharacterOfPosition(node.getStart(file));
    return `${fileName}:${line + 1}`;
  };
  const visiting = new Set<string>();
  rejectDetachedDocs(file, fileName);

  const forInterface = (name: string): JsonSchema => {
    const declaration = interfaces.get(name);
    if (declaration === undefined) throw new SchemaGenerationError(`interface ${name} is not declared in ${fileName}`);
    if (visiting.has(name)) throw new SchemaGenerationError(`${where(declaration)}: ${name} is recursive; structural schemas cannot be`);
    visiting.add(name);
    const properties: Record<string, JsonSchema> = {};
    const required: string[] = [];
    for (const member of declaration.members) {
      if (!ts.isPropertySignature(member) || member.type === undefined) {
        throw new SchemaGenerationError(`${where(member)}: only typed properties are supported in ${name}`);
      }
      const key = member.name.getText(file).replace(/^['"]|['"]$/g, '');
      const doc = docOf(member, file);
      const schema = applyDoc(forType(member.type), doc, where(member));
      properties[key] = schema;
      if (member.questionToken === undefined && !('default' in schema)) required.push(key);
    }
    visiting.delete(name);
    const schema: JsonSchema = { type: 'object', properties };
    if (required.length > 0) schema['required'] = required;
    return applyDoc(schema, docOf(declaration, file), where(declaration));
  };

  const forType = (node: ts.TypeNode): JsonSchema => {
    switch (node.kind) {
      case ts.SyntaxKind.StringKeyword:
        return { type: 'string' };
      case ts.SyntaxKind.NumberKeyword:
        return { type: 'number' };
      case ts.SyntaxKind.BooleanKeyword:
        return { type: 'boolean' };
    }
    if (ts.isTypeOperatorNode(node) && node.operator === ts.SyntaxKind.ReadonlyKeyword) return forType(node.type);
    if (ts.isArrayTypeNode(node)) return { type: 'array', items: forType(node.elementType) };
    if (ts.isParenthesizedTypeNode(node)) return forType(node.type);
    if (ts.isLiteralTypeNode(node) && ts.isStringLiteral(node.literal)) return { type: 'string', enum: [node.literal.text] };
    if (ts.isUnionTypeNode(node)) {
      const values = node.types.map((t) => (ts.isLiteralTypeNode(t) && ts.isStringLiteral(t.literal) ? t.literal.text : undefined));
      if (values.every((v): v is string => v !== undefined)) return { type: 'string', enum: values };
      throw new SchemaGenerationError(`${where(node)}: only unions of string literals are supported (use a @schemaType alias otherwise)`);
    }
    if (ts.isTypeReferenceNode(node)) {
      const name = node.typeName.getText(file);
      if (name === 'Record' && node.typeArguments?.length === 2) {
        return { type: 'object', additionalProperties: forType(node.typeArguments[1] as ts.TypeNode) };
      }
      if (name === 'Array' || name === 'ReadonlyArray') {
        const element = node.typeArguments?.[0];
        if (element !== undefined) return { type: 'array', items: forType(element) };
      }
      if (interfaces.has(name)) return forInterface(name);
      const alias = aliases.get(name);
      if (alias !== undefined) {
        const doc = docOf(alias, file);
        const declared = doc.tags.find((t) => t.name === 'schemaType')?.value;
        const base = declared !== undefined ? forSchemaType(declared, where(alias)) : forType(alias.type);
        return applyDoc(base, doc, where(alias));
      }
      throw new SchemaGenerationError(`${where(node)}: type ${name} is not declared in ${fileName}`);
    }
    throw new SchemaGenerationError(`${where(node)}: unsupported type ${node.getText(file)}`);
  };

  return order(forInterface(root));
}

/**
 * TypeScript attaches a doc comment only to what follows it, and only when nothing precedes it on
 * its line; one written after another token (`{ /** @minimum 1 *\/ a: number }`) is silently
 * dropped. A dropped tag would be a silently wrong schema, so such comments are an error.
 */
function rejectDetachedDocs(file: ts.SourceFile, fileName: string): void {
  const text = file.getFullText();
  const scanner = ts.createScanner(ts.ScriptTarget.ES2022, false, ts.LanguageVariant.Standard, text);
  for (let token = scanner.scan(); token !== ts.SyntaxKind.EndOfFileToken; token = scanner.scan()) {
    if (token !== ts.SyntaxKind.MultiLineCommentTrivia || !scanner.getTokenText().startsWith('/**')) continue;
    const pos = scanner.getTokenStart();
    const lineStart = text.lastIndexOf('\n', pos - 1) + 1;
    if (text.slice(lineStart, pos).trim() !== '') {
      const { line } = file.getLineAndCharacterOfPosition(pos);
      throw new SchemaGenerationError(
        `${fileName}:${line + 1}: a doc comment after other code on its line is ignored by TypeScript; put it on its own line`,
      );
    }
  }
}

function forSchemaType(declared: string, at: string): JsonSchema {
  switch (declared) {
    case 'integer':
    case 'string':
    case 'number':
    case 'boolean':
      return { type: declared };
    case 'object':
      return { type: 'object' };
    case 'int-or-string':
      return { anyOf: [{ type: 'integer' }, { type: 'string' }], 'x-kubernetes-int-or-string': true };
    default:
      throw new SchemaGenerationError(`${at}: unknown @schemaType ${JSON.stringify(declared)}`);
  }
}

/** Overlays a node's description and tags onto a schema (a property's own doc wins over its type's). */
function applyDoc(schema: JsonSchema, doc: Doc, at: string): JsonSchema {
  const out: JsonSchema = { ...schema };
  if (doc.description !== undefined) out['description'] = doc.description;
  const validations: unknown[] = [];
  for (const { name, value } of doc.tags) {
    if (NUMBER_TAGS.has(name)) {
      const n = Number(value);
      if (value === '' || !Number.isFinite(n))
        throw new SchemaGenerationError(`${at}: @${name} needs a number, got ${JSON.stringify(value)}`);
      out[name] = n;
    } else if (STRING_TAGS.has(name)) {
      if (value === '') throw new SchemaGenerationError(`${at}: @${name} needs a value`);
      out[name] = value;
    } else if (name === 'default') {
      out['default'] = parseJson(value, at, '@default');
    } else if (name === 'validation') {
      const rule = parseJson(value, at, '@validation');
      if (typeof rule !== 'object' || rule === null || typeof (rule as { rule?: unknown }).rule !== 'string') {
        throw new SchemaGenerationError(`${at}: @validation needs {"rule": "...", "message": "..."}`);
      }
      if (
        typeof (rule as { message?: unknown }).message !== 'string' &&
        typeof (rule as { messageExpression?: unknown }).messageExpression !== 'string'
      ) {
        throw new SchemaGenerationError(
          `${at}: @validation needs a human message: people read it when the API server refuses their manifest`,
        );
      }
      validations.push(rule);
    } else if (name === 'listType') {
      out['x-kubernetes-list-type'] = value;
    } else if (name === 'listMapKeys') {
      out['x-kubernetes-list-map-keys'] = value.split(',').map((k) => k.trim());
    } else if (name === 'schemaType' || IGNORED_TAGS.has(name)) {
      // handled by the caller, or documentation only
    } else {
      throw new SchemaGenerationError(`${at}: unknown tag @${name}`);
    }
  }
  if (validations.length > 0) out['x-kubernetes-validations'] = [...((out['x-kubernetes-validations'] as unknown[]) ?? []), ...validations];
  return out;
}

function parseJson(value: string, at: string, what: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new SchemaGenerationError(`${at}: ${what} must be JSON, got ${JSON.stringify(value)} (${(error as Error).message})`);
  }
}

function docOf(node: ts.Node, file: ts.SourceFile): Doc {
  const docs = ts.getJSDocCommentsAndTags(node).filter(ts.isJSDoc);
  const jsDoc = docs[docs.length - 1];
  if (jsDoc === undefined) return { description: undefined, tags: [] };
  const text = ts.getTextOfJSDocComment(jsDoc.comment);
  const tags = (jsDoc.tags ?? []).map((tag) => ({
    name: tag.tagName.text,
    value: (ts.getTextOfJSDocComment(tag.comment) ?? '').trim(),
  }));
  void file;
  return { description: text === undefined ? undefined : normalizeDescription(text), tags };
}

/** Joins wrapped lines into paragraphs: the schema's descriptions are prose, not source layout. */
function normalizeDescription(text: string): string {
  return text
    .split(/\n\s*\n/)
    .map((paragraph) => paragraph.replace(/\s*\n\s*/g, ' ').trim())
    .filter((p) => p !== '')
    .join('\n\n');
}

/** Deep copy with keywords in KEY_ORDER and property names in declaration order. */
function order(schema: JsonSchema): JsonSchema {
  const out: JsonSchema = {};
  const keys = Object.keys(schema).sort((a, b) => rank(a) - rank(b));
  for (const key of keys) {
    const value = schema[key];
    if (key === 'properties' && value !== null && typeof value === 'object') {
      const properties: Record<string, JsonSchema> = {};
      for (const [name, child] of Object.entries(value as Record<string, JsonSchema>)) properties[name] = order(child);
      out[key] = properties;
    } else if ((key === 'items' || key === 'additionalProperties') && value !== null && typeof value === 'object') {
      out[key] = order(value as JsonSchema);
    } else {
      out[key] = value;
    }
  }
  return out;
}

function rank(key: string): number {
  const index = KEY_ORDER.indexOf(key);
  return index === -1 ? KEY_ORDER.length : index;
}
