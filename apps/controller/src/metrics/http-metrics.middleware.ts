import type { NextFunction, Request, Response } from 'express';
import type { MetricsService } from './metrics.service.js';

/**
 * Times every HTTP request. The route label is the matched pattern (`/api/v1/devices/:device`),
 * never the raw path, so ids and names cannot grow the number of series; the dashboard's files
 * are one route, `/ui`, and anything unmatched is `unmatched`.
 */
export function httpMetricsMiddleware(metrics: MetricsService) {
  return (req: Request, res: Response, next: NextFunction): void => {
    const end = metrics.httpRequestDuration.startTimer();
    res.once('finish', () => {
      const route = req.route?.path ? `${req.baseUrl}${String(req.route.path)}` : req.path === '/ui' || req.path.startsWith('/ui/') ? '/ui' : 'unmatched';
      end({ method: req.method, route, status: String(res.statusCode) });
    });
    next();
  };
}
