import { Body, Controller, Get, Param, Post } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { CurrentCaller } from '../auth/auth.decorators.js';
import { ApiDeviceParam } from '../devices/devices.controller.js';
import { ApiErrors, ApiTokenAuth } from '../http/openapi.js';
import type { Caller } from '../http/request-context.js';
import { jobView } from '../jobs/jobs.dto.js';
import { generationsView, rollbackBody, type RollbackBody } from './generations.dto.js';
import { GenerationsService } from './generations.service.js';

@ApiTags('Generations')
@ApiTokenAuth()
@Controller('api/v1/devices/:device/generations')
export class GenerationsController {
  constructor(private readonly generations: GenerationsService) {}

  @Get()
  @ApiOperation({
    summary: "A device's generations",
    description:
      'The btrfs generations as the agent last reported them: each with its status (trial, good, bad), which one is booted and which is current, ' +
      'plus the last good one and the trial. A device that reports none answers 200 with `supported: false` and `generations: []`.',
  })
  @ApiDeviceParam()
  @ApiOkResponse({ standardSchema: generationsView })
  @ApiErrors(404)
  get(@Param('device') device: string) {
    return this.generations.get(device);
  }

  @Post('rollback')
  @ApiOperation({
    summary: 'Roll a device back to a generation',
    description:
      'Queues a `generations.rollback` job (follow it with GET /api/v1/jobs/{id}; its result is the new inventory). ' +
      '`to` is checked against the latest inventory: 400 naming `to` when that generation does not exist, is incomplete or bad, or is already current. ' +
      '409 when the device reports no generations, has nothing to roll back to, is revoked, or already has an unfinished rollback job.',
  })
  @ApiDeviceParam()
  @ApiCreatedResponse({ standardSchema: jobView })
  @ApiErrors(400, 404, 409, 413)
  rollback(@CurrentCaller() caller: Caller, @Param('device') device: string, @Body({ schema: rollbackBody }) body: RollbackBody) {
    return this.generations.rollback(caller, device, body);
  }
}
