import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { CurrentCaller } from '../auth/auth.decorators.js';
import { ApiDeviceParam } from '../devices/devices.controller.js';
import { ApiErrors, ApiTokenAuth } from '../http/openapi.js';
import type { Caller } from '../http/request-context.js';
import {
  createJobBody,
  type CreateJobBody,
  jobDetailView,
  jobLogsQuery,
  type JobLogsQuery,
  jobLogsView,
  jobPage,
  jobTypeList,
  jobView,
  listJobsQuery,
  type ListJobsQuery,
} from './jobs.dto.js';
import { JobsService } from './jobs.service.js';

const ApiJobParam = () => ApiParam({ name: 'id', description: 'Job id (uuid).' });

@ApiTags('Jobs')
@ApiTokenAuth()
@Controller('api/v1')
export class JobsController {
  constructor(private readonly jobs: JobsService) {}

  @Get('job-types')
  @ApiOperation({ summary: 'Job types', description: 'What jobs exist, their defaults and the JSON Schema of their params.' })
  @ApiOkResponse({ standardSchema: jobTypeList })
  types() {
    return this.jobs.types();
  }

  @Post('devices/:device/jobs')
  @ApiOperation({
    summary: 'Run a job on a device',
    description: 'Queued now and delivered when the device is online (or it expires). `params` are checked against the job type (400 names `params.x`).',
  })
  @ApiDeviceParam()
  @ApiCreatedResponse({ standardSchema: jobView })
  @ApiErrors(400, 404, 409, 413)
  create(@CurrentCaller() caller: Caller, @Param('device') device: string, @Body({ schema: createJobBody }) body: CreateJobBody) {
    return this.jobs.create(caller, device, body);
  }

  @Get('jobs')
  @ApiOperation({ summary: 'List jobs', description: 'Newest first; filter by device, status and type.' })
  @ApiOkResponse({ standardSchema: jobPage })
  @ApiErrors(400, 404)
  list(@Query({ schema: listJobsQuery }) query: ListJobsQuery) {
    return this.jobs.list(query);
  }

  @Get('jobs/:id')
  @ApiOperation({ summary: 'Get a job', description: 'With progress, attempt, result, error, timestamps and its latest log lines.' })
  @ApiJobParam()
  @ApiOkResponse({ standardSchema: jobDetailView })
  @ApiErrors(404)
  get(@Param('id') id: string) {
    return this.jobs.get(id);
  }

  @Get('jobs/:id/logs')
  @ApiOperation({ summary: 'Job log lines', description: 'Oldest first. Keep passing `nextCursor` back to follow a running job.' })
  @ApiJobParam()
  @ApiOkResponse({ standardSchema: jobLogsView })
  @ApiErrors(400, 404)
  logs(@Param('id') id: string, @Query({ schema: jobLogsQuery }) query: JobLogsQuery) {
    return this.jobs.logs(id, query);
  }

  @Post('jobs/:id/cancel')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Cancel a job',
    description: 'A queued job is cancelled at once; a delivered or running one gets `cancelRequestedAt` and the agent is told. 409 when it already finished.',
  })
  @ApiJobParam()
  @ApiOkResponse({ standardSchema: jobView })
  @ApiErrors(404, 409)
  cancel(@CurrentCaller() caller: Caller, @Param('id') id: string) {
    return this.jobs.cancel(caller, id);
  }
}
