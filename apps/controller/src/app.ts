import 'reflect-metadata';
import { type INestApplication, type LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { configureHttp } from './api/configure-http.js';
import { AppModule } from './app.module.js';
import type { Config } from './config/config.js';

const levels: LogLevel[] = ['error', 'warn', 'log', 'debug', 'verbose'];

/** Builds the Nest application (not yet listening). Used by main.ts and by tests. */
export async function createApp(config: Config): Promise<INestApplication> {
  const app = await NestFactory.create(AppModule.forRoot(config), {
    logger: levels.slice(0, levels.indexOf(config.logLevel) + 1),
    bufferLogs: false,
    // configure-http.ts registers the only body parser: JSON, 2 MiB.
    bodyParser: false,
  });
  app.enableShutdownHooks();
  configureHttp(app, config);
  return app;
}
