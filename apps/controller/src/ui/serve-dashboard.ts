import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import type { NestExpressApplication } from '@nestjs/platform-express';
import type { NextFunction, Request, Response } from 'express';
import type { Config } from '../config/config.js';
import { requestIdOf } from '../api/http/request-context.js';

export const UI_PATH = '/ui';

// The dashboard loads only its own files and calls only this controller's API.
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

/**
 * The web dashboard (apps/dashboard, built by Vite) at /ui: static files, no token needed to
 * load them; the page asks for an API token and sends it with every API call. Hashed assets
 * are cached for a year, index.html never. `/` redirects here.
 */
export function serveDashboard(app: INestApplication, config: Config): void {
  const server = app as NestExpressApplication;
  const dir = config.uiDir;
  server.use(UI_PATH, (_req: Request, res: Response, next: NextFunction) => {
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    next();
  });
  const assets = join(dir, 'assets');
  server.useStaticAssets(dir, {
    prefix: UI_PATH,
    index: 'index.html',
    setHeaders: (res, path) => res.setHeader('Cache-Control', path.startsWith(assets) ? 'public, max-age=31536000, immutable' : 'no-cache'),
  });
  server.use(UI_PATH, (req: Request, res: Response, next: NextFunction) => {
    if (existsSync(join(dir, 'index.html'))) return next(); // a file that is not there: the usual 404
    res.status(503).json({
      error: { code: 'unavailable', message: `the dashboard is not built (no index.html in ${dir}); run \`npm run build\` at the repository root, or set IBEX_UI_DIR` },
      requestId: requestIdOf(req),
    });
  });
  server.use((req: Request, res: Response, next: NextFunction) => (req.method === 'GET' && req.path === '/' ? res.redirect(302, `${UI_PATH}/`) : next()));
}
