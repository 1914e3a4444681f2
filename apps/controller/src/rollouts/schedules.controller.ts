import { Body, Controller, Delete, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { CurrentCaller } from '../api/auth/auth.decorators.js';
import { ApiErrors, ApiTokenAuth } from '../api/http/openapi.js';
import type { Caller } from '../api/http/request-context.js';
import { createScheduleBody, type CreateScheduleBody, scheduleList, scheduleView } from './rollouts.dto.js';
import { SchedulesService } from './schedules.service.js';

const ApiScheduleParam = () => ApiParam({ name: 'id', description: 'Schedule id (uuid) or name.' });

@ApiTags('Rollouts')
@ApiTokenAuth()
@Controller('api/v1/schedules')
export class SchedulesController {
  constructor(private readonly schedules: SchedulesService) {}

  @Post()
  @ApiOperation({ summary: 'Create a recurring rollout', description: 'At every occurrence of `cron` in `timeZone` (for example `0 2 * * 0`, Europe/Berlin: Sundays 02:00) a rollout from `rollout` starts.' })
  @ApiCreatedResponse({ standardSchema: scheduleView })
  @ApiErrors(400, 409)
  create(@CurrentCaller() caller: Caller, @Body({ schema: createScheduleBody }) body: CreateScheduleBody) {
    return this.schedules.create(caller, body);
  }

  @Get()
  @ApiOperation({ summary: 'List schedules', description: 'With the next occurrence of each.' })
  @ApiOkResponse({ standardSchema: scheduleList })
  list() {
    return this.schedules.list();
  }

  @Get(':id')
  @ApiOperation({ summary: 'Get a schedule' })
  @ApiScheduleParam()
  @ApiOkResponse({ standardSchema: scheduleView })
  @ApiErrors(404)
  get(@Param('id') id: string) {
    return this.schedules.get(id);
  }

  @Post(':id/pause')
  @HttpCode(200)
  @ApiOperation({ summary: 'Pause a schedule', description: 'No rollout starts until it is resumed; rollouts under way go on.' })
  @ApiScheduleParam()
  @ApiOkResponse({ standardSchema: scheduleView })
  @ApiErrors(404)
  pause(@CurrentCaller() caller: Caller, @Param('id') id: string) {
    return this.schedules.pause(caller, id);
  }

  @Post(':id/resume')
  @HttpCode(200)
  @ApiOperation({ summary: 'Resume a schedule' })
  @ApiScheduleParam()
  @ApiOkResponse({ standardSchema: scheduleView })
  @ApiErrors(404)
  resume(@CurrentCaller() caller: Caller, @Param('id') id: string) {
    return this.schedules.resume(caller, id);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a schedule', description: 'The rollouts it started stay.' })
  @ApiScheduleParam()
  @ApiNoContentResponse()
  @ApiErrors(404)
  async delete(@CurrentCaller() caller: Caller, @Param('id') id: string) {
    await this.schedules.delete(caller, id);
  }
}
