import { Controller, Get, Res } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiServiceUnavailableResponse, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { Public } from '../auth/auth.decorators.js';
import { livenessView, readinessView } from './health.dto.js';
import { HealthService } from './health.service.js';

/** Probes for load balancers and orchestrators: no token needed. */
@ApiTags('Health')
@Public()
@Controller()
export class HealthController {
  constructor(private readonly health: HealthService) {}

  @Get('healthz')
  @ApiOperation({ summary: 'Liveness', description: 'The process is up and serving HTTP. No auth.' })
  @ApiOkResponse({ standardSchema: livenessView })
  healthz() {
    return this.health.liveness();
  }

  @Get('readyz')
  @ApiOperation({ summary: 'Readiness', description: '200 when Postgres and Redis answer; 503 naming which is down. No auth.' })
  @ApiOkResponse({ standardSchema: readinessView })
  @ApiServiceUnavailableResponse({ standardSchema: readinessView, description: 'Postgres or Redis is down (named in `message`).' })
  async readyz(@Res({ passthrough: true }) res: Response) {
    const view = await this.health.readiness();
    res.status(view.ready ? 200 : 503);
    return view;
  }
}
