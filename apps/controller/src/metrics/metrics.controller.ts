import { Controller, Get, Header, Res } from '@nestjs/common';
import { ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { Public } from '../api/auth/auth.decorators.js';
import { MetricsService } from './metrics.service.js';

/** Prometheus scrapes without a token, like the health probes: the series hold counts, no secrets. */
@ApiTags('Health')
@Public()
@Controller()
export class MetricsController {
  constructor(private readonly metrics: MetricsService) {}

  @Get('metrics')
  @ApiOperation({
    summary: 'Prometheus metrics',
    description: 'Text exposition format: connected agents, heartbeats stored, delivery passes, jobs, HTTP latency, BullMQ queue depths, Postgres pools. No auth.',
  })
  @ApiProduces('text/plain')
  @Header('Cache-Control', 'no-store')
  async scrape(@Res() res: Response): Promise<void> {
    const { contentType, body } = await this.metrics.render();
    res.type(contentType).send(body);
  }
}
