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
export async function readSpecFile(io: Io, file: string): Promise<Record<string, unknown>> {
  const { name, value } = await readYamlOrJson(io, file);
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new CliError(`${name} must hold a desired-state object (one key per section, e.g. "files:")`, EXIT.usage);
  }
  parseOrThrow(desiredStateSchema, value, `spec in ${name}`);
  // Sent as written: the controller fills in the defaults itself, as for any other client.
  return value as Record<string, unknown>;
}

/** A YAML or JSON file (`-` for stdin) as a value; unreadable or unparsable is a usage error naming the file. */
export async function readYamlOrJson(io: Io, file: string): Promise<{ name: string; value: unknown }> {
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
  return { name, value: doc.toJS() as unknown };
}
