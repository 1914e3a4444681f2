import type { INestApplication } from '@nestjs/common';
import type { Config } from '../config/config.js';

/** HTTP-wide setup: error filter, OpenAPI document, body limits. (Scaffold.) */
export function configureHttp(_app: INestApplication, _config: Config): void {}
