import { Body, Controller, Param, Post, Query, Res } from '@nestjs/common';
import { ApiCreatedResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { CurrentCaller } from '../auth/auth.decorators.js';
import { ApiDeviceParam } from '../devices/devices.controller.js';
import { ApiErrors, ApiTokenAuth } from '../http/openapi.js';
import type { Caller } from '../http/request-context.js';
import { planDeviceBody, type PlanDeviceBody, planDeviceQuery, type PlanDeviceQuery, planJobView } from './plan.dto.js';
import { PlanService } from './plan.service.js';

@ApiTags('Desired state')
@ApiTokenAuth()
@Controller('api/v1/devices/:device')
export class PlanController {
  constructor(private readonly plans: PlanService) {}

  @Post('plan')
  @ApiOperation({
    summary: 'Dry run: what would change on a device',
    description:
      'Queues a `state.plan` job: the agent observes the device and plans it against `spec` (a proposed desired state, validated like PUT desired-state) ' +
      "or, without `spec`, its current desired revision, and changes nothing. The job's `result` (schema PlanResult) lists per section its state " +
      '(in_sync, pending, unsupported, failed) and the steps that would run, with `diff` (unified diff of a file) and `commands` (argument vectors) where the capability gives them. ' +
      'Follow it with GET /api/v1/jobs/{id}, or pass `?wait=30` to get the finished job in this response when the device answers in time. ' +
      '409 when no spec is given and the device has no desired state yet, or the device is revoked.',
  })
  @ApiDeviceParam()
  @ApiCreatedResponse({ standardSchema: planJobView, description: 'The plan job (finished when `wait` was long enough).' })
  @ApiErrors(400, 404, 409, 413)
  plan(
    @CurrentCaller() caller: Caller,
    @Param('device') device: string,
    @Body({ schema: planDeviceBody }) body: PlanDeviceBody,
    @Query({ schema: planDeviceQuery }) query: PlanDeviceQuery,
    @Res({ passthrough: true }) res: Response,
  ) {
    // A client that hangs up stops the wait (the job itself stays queued). The response closes
    // before it was sent only when the connection went away.
    const gone = new AbortController();
    res.once('close', () => gone.abort());
    return this.plans.plan(caller, device, body, query.wait, gone.signal);
  }
}
