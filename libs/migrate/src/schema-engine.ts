// Loads Prisma's WebAssembly schema engine. The package's ESM entry imports the .wasm file
// directly, which Node cannot do, so the module is instantiated by hand (see ENVIRONMENT.md).
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import * as bg from '@prisma/schema-engine-wasm/schema_engine_bg';

const require = createRequire(import.meta.url);

// @types/node does not declare WebAssembly; this is the little of it used here.
interface Wasm {
  instantiate(bytes: Uint8Array, imports: object): Promise<{ instance: { exports: Record<string, unknown> } }>;
}
const wasmApi = (globalThis as unknown as { WebAssembly: Wasm }).WebAssembly;
let loaded: Promise<void> | undefined;

function loadWasm(): Promise<void> {
  loaded ??= (async () => {
    // The .wasm file is not in the package's export map: find it beside the JS glue.
    const wasmPath = join(dirname(require.resolve('@prisma/schema-engine-wasm/schema_engine_bg')), 'schema_engine_bg.wasm');
    const bytes = await readFile(wasmPath);
    const { instance } = await wasmApi.instantiate(bytes, { './schema_engine_bg.js': bg });
    bg.__wbg_set_wasm(instance.exports);
    const start = instance.exports['__wbindgen_start'];
    if (typeof start === 'function') (start as () => void)();
  })();
  return loaded;
}

export interface EngineHandle {
  engine: bg.SchemaEngine;
  close(): Promise<void>;
}

const PG_CHAR = 18;
const PG_TEXT = 25;

/**
 * The engine reads the catalog (pg_class.relkind and friends are of type "char"), and
 * @prisma/adapter-pg refuses that type ("Column type 'char' could not be deserialized").
 * pg already returns "char" values as strings, so report such columns as text.
 */
class CatalogFriendlyClient extends pg.Client {
  override query(...args: unknown[]): never {
    const fix = (res: pg.QueryResult | undefined) => {
      for (const f of res?.fields ?? []) if (f.dataTypeID === PG_CHAR) f.dataTypeID = PG_TEXT;
      return res;
    };
    // pg.Pool#query calls the client with a callback; direct callers use the promise form.
    const cb = args[args.length - 1];
    if (typeof cb === 'function') {
      args[args.length - 1] = (err: Error | null, res?: pg.QueryResult) => (cb as (e: Error | null, r?: unknown) => void)(err, fix(res));
    }
    const out = (super.query as (...a: unknown[]) => unknown)(...args);
    if (out && typeof (out as Promise<unknown>).then === 'function') return (out as Promise<pg.QueryResult>).then(fix) as never;
    return out as never;
  }
}

/** A schema engine bound to one database (the adapter decides which). */
export async function openEngine(connectionString: string, schemaFile: { path: string; content: string }): Promise<EngineHandle> {
  await loadWasm();
  const pool = new pg.Pool({ connectionString, Client: CatalogFriendlyClient, max: 2 });
  const factory = new PrismaPg(pool);
  const bound = bindMigrationAwareSqlAdapterFactory(factory);
  const engine = await bg.SchemaEngine.new({ datamodels: [[schemaFile.path, schemaFile.content]] }, () => {}, bound);
  return {
    engine,
    async close() {
      engine.free();
      await pool.end();
    },
  };
}
