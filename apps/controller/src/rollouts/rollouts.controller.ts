import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { z } from 'zod';
import { CurrentCaller } from '../api/auth/auth.decorators.js';
import { ApiErrors, ApiTokenAuth } from '../api/http/openapi.js';
import type { Caller } from '../api/http/request-context.js';
import {
  createRolloutBody,
  type CreateRolloutBody,
  createRolloutQuery,
  type CreateRolloutQuery,
  listRolloutsQuery,
  type ListRolloutsQuery,
  listTargetsQuery,
  type ListTargetsQuery,
  rolloutPage,
  rolloutPreview,
  rolloutTargetPage,
  rolloutView,
} from './rollouts.dto.js';
import { RolloutsService } from './rollouts.service.js';

const ApiRolloutParam = () => ApiParam({ name: 'id', description: 'Rollout id (uuid), or its name (the newest rollout of that name).' });
const previewQuery = z.object({ wait: z.coerce.number().int().min(0).max(120).default(30) }).strict();
const abortBody = z.object({ rollback: z.boolean().optional().describe("Roll the changed devices back; default: the rollout's autoRollback.") }).strict().meta({ id: 'AbortRollout' });

/** A client that hangs up stops a dry run's wait (its plan jobs stay). */
function goneSignal(res: Response): AbortSignal {
  const gone = new AbortController();
  res.once('close', () => gone.abort());
  return gone.signal;
}

@ApiTags('Rollouts')
@ApiTokenAuth()
@Controller('api/v1/rollouts')
export class RolloutsController {
  constructor(private readonly rollouts: RolloutsService) {}

  @Post()
  @ApiOperation({
    summary: 'Create a rollout (or dry-run it)',
    description:
      'Targets devices by selector, list or all, with a payload (desired state, generation upgrade, generation rollback), a strategy (canary, waves, thresholds, approvals) and a start (now, at, maintenance window). ' +
      'With `?dryRun=true` nothing is stored: the response (RolloutPreview) lists the waves, their devices and per online device the plan (a `state.plan` job for desired state, the inventory for generations). 400 names the field.',
  })
  @ApiCreatedResponse({ standardSchema: rolloutView, description: 'The rollout (or, with dryRun, a RolloutPreview).' })
  @ApiErrors(400, 404, 409, 413)
  create(@CurrentCaller() caller: Caller, @Body({ schema: createRolloutBody }) body: CreateRolloutBody, @Query({ schema: createRolloutQuery }) query: CreateRolloutQuery, @Res({ passthrough: true }) res: Response) {
    return this.rollouts.create(caller, body, query, goneSignal(res));
  }

  @Get()
  @ApiOperation({ summary: 'List rollouts', description: 'Newest first, each with its per-wave progress.' })
  @ApiOkResponse({ standardSchema: rolloutPage })
  @ApiErrors(400)
  list(@Query({ schema: listRolloutsQuery }) query: ListRolloutsQuery) {
    return this.rollouts.list(query);
  }

  @Get(':id')
  @ApiOperation({ summary: 'Get a rollout', description: 'Status, reason, and per wave the counts of pending, in progress, succeeded, failed, rolled back and skipped devices.' })
  @ApiRolloutParam()
  @ApiOkResponse({ standardSchema: rolloutView })
  @ApiErrors(404)
  get(@Param('id') id: string) {
    return this.rollouts.get(id);
  }

  @Get(':id/devices')
  @ApiOperation({ summary: "A rollout's devices", description: 'Per device: wave, outcome and reason, jobs. By name; filter by state or wave.' })
  @ApiRolloutParam()
  @ApiOkResponse({ standardSchema: rolloutTargetPage })
  @ApiErrors(400, 404)
  devices(@Param('id') id: string, @Query({ schema: listTargetsQuery }) query: ListTargetsQuery) {
    return this.rollouts.targets(id, query);
  }

  @Post(':id/preview')
  @HttpCode(200)
  @ApiOperation({ summary: 'Dry run of a stored rollout', description: 'Its devices planned again now, as POST /rollouts?dryRun=true does.' })
  @ApiRolloutParam()
  @ApiOkResponse({ standardSchema: rolloutPreview })
  @ApiErrors(400, 404)
  preview(@CurrentCaller() caller: Caller, @Param('id') id: string, @Query({ schema: previewQuery }) query: z.output<typeof previewQuery>, @Res({ passthrough: true }) res: Response) {
    return this.rollouts.previewStored(caller, id, query.wait, goneSignal(res));
  }

  @Post(':id/pause')
  @HttpCode(200)
  @ApiOperation({ summary: 'Pause', description: 'No device gets a new job; results of jobs under way are still recorded. 409 unless scheduled, running or waiting for approval.' })
  @ApiRolloutParam()
  @ApiOkResponse({ standardSchema: rolloutView })
  @ApiErrors(404, 409)
  pause(@CurrentCaller() caller: Caller, @Param('id') id: string) {
    return this.rollouts.pause(caller, id);
  }

  @Post(':id/resume')
  @HttpCode(200)
  @ApiOperation({ summary: 'Resume a paused rollout' })
  @ApiRolloutParam()
  @ApiOkResponse({ standardSchema: rolloutView })
  @ApiErrors(404, 409)
  resume(@CurrentCaller() caller: Caller, @Param('id') id: string) {
    return this.rollouts.resume(caller, id);
  }

  @Post(':id/approve')
  @HttpCode(200)
  @ApiOperation({ summary: 'Approve the next wave', description: '409 unless the rollout is waiting for approval.' })
  @ApiRolloutParam()
  @ApiOkResponse({ standardSchema: rolloutView })
  @ApiErrors(404, 409)
  approve(@CurrentCaller() caller: Caller, @Param('id') id: string) {
    return this.rollouts.approve(caller, id);
  }

  @Post(':id/abort')
  @HttpCode(200)
  @ApiOperation({ summary: 'Abort', description: 'Pending devices are skipped; with rollback the devices already changed are rolled back.' })
  @ApiRolloutParam()
  @ApiOkResponse({ standardSchema: rolloutView })
  @ApiErrors(400, 404, 409)
  abort(@CurrentCaller() caller: Caller, @Param('id') id: string, @Body({ schema: abortBody }) body: z.output<typeof abortBody>) {
    return this.rollouts.abort(caller, id, body?.rollback);
  }

  @Post(':id/retry')
  @HttpCode(200)
  @ApiOperation({ summary: 'Retry the failed devices', description: 'Each failed device gets a new job; 409 when none failed.' })
  @ApiRolloutParam()
  @ApiOkResponse({ standardSchema: rolloutView })
  @ApiErrors(404, 409)
  retry(@CurrentCaller() caller: Caller, @Param('id') id: string) {
    return this.rollouts.retryFailed(caller, id);
  }
}
