import { readFile } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import { desiredStateSchema, parseOrThrow } from '@ibex/spec';
import { CliError, EXIT } from './exit-codes.js';
import type { Io } from './output.js';

/**
 * Reads a desired-state spec from a YAML or JSON file (`-` for stdin; JSON is YAML, so one
 * parser reads both) and validates it with the schemas the controller and the agent use, so a
 * bad spec is refused here, naming the file and the field, before anything is sent.
 */
/**
 * Reads a YAML or JSON file (`-` for stdin) holding one object; `what` names it in the errors
 * ("a desired-state object (one key per section, e.g. \"files:\")").
 */
export async function readObjectFile(io: Io, file: string, what: string): Promise<Record<string, unknown>> {
  const name = file === '-' ? 'standard input' : file;
  let text: string;
  try {
    text = file === '-' ? await io.stdin() : await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read ${name}: ${code === 'ENOENT' ? 'no such file' : (err as Error).message}`, EXIT.usage);
  }
  const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    throw new CliError(`${name} is not valid YAML or JSON`, EXIT.usage, doc.errors.map((e) => e.message.split('\n')[0] ?? e.message));
  }
  const value: unknown = doc.toJS();
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new CliError(`${name} must hold ${what}`, EXIT.usage);
  return value as Record<string, unknown>;
}

/**
 * Reads a desired-state spec from a YAML or JSON file (`-` for stdin; JSON is YAML, so one
 * parser reads both) and validates it with the schemas the controller and the agent use, so a
 * bad spec is refused here, naming the file and the field, before anything is sent.
 */
export async function readSpecFile(io: Io, file: string): Promise<Record<string, unknown>> {
  const value = await readObjectFile(io, file, 'a desired-state object (one key per section, e.g. "files:")');
  parseOrThrow(desiredStateSchema, value, `spec in ${file === '-' ? 'standard input' : file}`);
  // Sent as written: the controller fills in the defaults itself, as for any other client.
  return value;
}
