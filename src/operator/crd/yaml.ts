/**
 * A small, deterministic YAML emitter for JSON-shaped values (the generated CRD). Strings that
 * could be misread are written as JSON strings, which are valid double-quoted YAML scalars.
 */

const PLAIN = /^[A-Za-z_/][A-Za-z0-9_./-]*$/;
const RESERVED = /^(true|false|yes|no|on|off|y|n|null|~)$/i;

function scalar(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return PLAIN.test(value) && !RESERVED.test(value) ? value : JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new Error(`cannot write ${value} as YAML`);
    return String(value);
  }
  if (typeof value === 'boolean') return String(value);
  throw new Error(`cannot write a ${typeof value} as YAML`);
}

function isCollection(value: unknown): value is Record<string, unknown> | unknown[] {
  return typeof value === 'object' && value !== null;
}

function isEmpty(value: Record<string, unknown> | unknown[]): boolean {
  return Array.isArray(value) ? value.length === 0 : Object.keys(value).length === 0;
}

function lines(value: unknown, indent: string): string[] {
  if (!isCollection(value) || isEmpty(value)) return [indent + inline(value)];
  const out: string[] = [];
  if (Array.isArray(value)) {
    for (const item of value) {
      if (isCollection(item) && !isEmpty(item)) {
        const nested = lines(item, indent + '  ');
        out.push(`${indent}- ${(nested[0] ?? '').slice(indent.length + 2)}`, ...nested.slice(1));
      } else {
        out.push(`${indent}- ${inline(item)}`);
      }
    }
    return out;
  }
  for (const [key, child] of Object.entries(value)) {
    if (child === undefined) continue;
    const name = scalar(key);
    if (isCollection(child) && !isEmpty(child)) {
      out.push(`${indent}${name}:`, ...lines(child, indent + '  '));
    } else {
      out.push(`${indent}${name}: ${inline(child)}`);
    }
  }
  return out;
}

function inline(value: unknown): string {
  if (Array.isArray(value)) return '[]';
  if (isCollection(value)) return '{}';
  return scalar(value);
}

/** One YAML document for `value`, ending with a newline. */
export function toYaml(value: unknown): string {
  return lines(value, '').join('\n') + '\n';
}
