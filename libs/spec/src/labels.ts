import { z } from 'zod';

// Kubernetes-style labels: people already know the rules.
const KEY_RE = /^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const VALUE_RE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

export const labelKeySchema = z
  .string()
  .regex(KEY_RE, 'label key must be 1-63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit (optionally prefixed by "domain/")');
export const labelValueSchema = z
  .string()
  .regex(VALUE_RE, 'label value must be at most 63 letters, digits, "-", "_" or ".", starting and ending with a letter or digit');

export const labelsSchema = z
  .record(labelKeySchema, labelValueSchema)
  .refine((l) => Object.keys(l).length <= 64, 'at most 64 labels');
export type Labels = z.infer<typeof labelsSchema>;

export type SelectorTerm =
  | { key: string; op: 'eq' | 'neq'; value: string }
  | { key: string; op: 'exists' | 'notexists' };

/**
 * Parses a label selector: comma-separated `key=value`, `key==value`, `key!=value`, `key`
 * (has the label) or `!key` (does not). Throws an Error naming the bad term.
 */
export function parseSelector(text: string): SelectorTerm[] {
  const terms: SelectorTerm[] = [];
  if (!text.trim()) return terms;
  for (const raw of text.split(',')) {
    const term = raw.trim();
    let m: RegExpMatchArray | null;
    if ((m = term.match(/^([^=!\s]+)\s*!=\s*(.*)$/))) {
      terms.push({ key: checkKey(m[1]!, term), op: 'neq', value: checkValue(m[2]!, term) });
    } else if ((m = term.match(/^([^=!\s]+)\s*==?\s*(.*)$/))) {
      terms.push({ key: checkKey(m[1]!, term), op: 'eq', value: checkValue(m[2]!, term) });
    } else if ((m = term.match(/^!\s*([^=!\s]+)$/))) {
      terms.push({ key: checkKey(m[1]!, term), op: 'notexists' });
    } else if ((m = term.match(/^([^=!\s]+)$/))) {
      terms.push({ key: checkKey(m[1]!, term), op: 'exists' });
    } else {
      throw new Error(`selector term "${term}" is not key=value, key!=value, key or !key`);
    }
  }
  return terms;
}

function checkKey(key: string, term: string): string {
  if (!KEY_RE.test(key)) throw new Error(`selector term "${term}": "${key}" is not a valid label key`);
  return key;
}
function checkValue(value: string, term: string): string {
  const v = value.trim();
  if (!VALUE_RE.test(v)) throw new Error(`selector term "${term}": "${v}" is not a valid label value`);
  return v;
}

export function matchesSelector(labels: Record<string, string>, terms: SelectorTerm[]): boolean {
  return terms.every((t) => {
    const has = Object.hasOwn(labels, t.key);
    switch (t.op) {
      case 'eq':
        return has && labels[t.key] === t.value;
      case 'neq':
        return !has || labels[t.key] !== t.value;
      case 'exists':
        return has;
      case 'notexists':
        return !has;
    }
  });
}
