#!/usr/bin/env node
import { Logger } from '@nestjs/common';
import { migrateDeploy, redact } from '@ibex/migrate';
import { createApp } from './app.js';
import { failpointsProblem } from './common/failpoints.js';
import { ConfigError, loadConfig } from './config/config.js';

async function main(): Promise<void> {
  const failpoints = failpointsProblem();
  if (failpoints) throw new ConfigError(failpoints);
  const config = loadConfig();
  const log = new Logger('Ibex');
  if (config.migrateOnStart) {
    const applied = await migrateDeploy(config.databaseUrl);
    if (applied.length) log.log(`applied migrations to ${redact(config.databaseUrl)}: ${applied.join(', ')}`);
  }
  const app = await createApp(config);
  await app.listen(config.http.port, config.http.host);
  const url = await app.getUrl();
  log.log(`controller ${config.version} (replica ${config.replicaId}) serving REST on ${url}/api/v1, docs on ${url}/api/docs`);
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    console.error(`ibex-controller: ${err.message}`);
  } else {
    console.error(`ibex-controller failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
  process.exit(1);
});
