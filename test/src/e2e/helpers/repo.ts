import { fileURLToPath } from 'node:url';
import { join } from 'node:path';

/** The repository root (test/dist/e2e/helpers -> ../../../..). */
export const repo = process.env['IBEX_REPO'] ?? fileURLToPath(new URL('../../../../', import.meta.url));
export const agentBinary = join(repo, 'dist', 'agent', `ibex-agent-linux-${process.arch === 'arm64' ? 'arm64' : 'x64'}`);
export const controllerMain = join(repo, 'apps', 'controller', 'dist', 'main.js');
export const cliMain = join(repo, 'apps', 'cli', 'dist', 'main.js');
