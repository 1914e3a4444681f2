import { Body, Controller, Get, Headers, Param, Put, Query, Res } from '@nestjs/common';
import { ApiHeader, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { CurrentCaller } from '../auth/auth.decorators.js';
import { ApiDeviceParam } from '../devices/devices.controller.js';
import { ApiErrors, ApiTokenAuth } from '../http/openapi.js';
import type { Caller } from '../http/request-context.js';
import {
  desiredRevisionView,
  deviceStateView,
  listRevisionsQuery,
  type ListRevisionsQuery,
  putDesiredStateBody,
  revisionParam,
  type PutDesiredStateBody,
  revisionPage,
} from './desired-state.dto.js';
import { DesiredStateService, parseIfMatch } from './desired-state.service.js';

@ApiTags('Desired state')
@ApiTokenAuth()
@Controller('api/v1/devices/:device')
export class DesiredStateController {
  constructor(private readonly desired: DesiredStateService) {}

  @Put('desired-state')
  @ApiOperation({
    summary: 'Set the desired state of a device',
    description:
      'Validates the spec with the same schemas the agent uses (400 names each bad field), writes the next revision and tells the device. ' +
      'Optimistic concurrency: `ifMatchRevision` or `If-Match: "N"` -> 409 unless N is the current revision.',
  })
  @ApiDeviceParam()
  @ApiHeader({ name: 'If-Match', required: false, description: 'Current revision expected, e.g. "3" (the ETag of GET desired-state).' })
  @ApiOkResponse({ standardSchema: desiredRevisionView, description: 'The new revision.' })
  @ApiErrors(400, 404, 409, 413)
  async put(
    @CurrentCaller() caller: Caller,
    @Param('device') device: string,
    @Body({ schema: putDesiredStateBody }) body: PutDesiredStateBody,
    @Headers('if-match') ifMatch: string | undefined,
    @Res({ passthrough: true }) res: Response,
  ) {
    const view = await this.desired.put(caller, device, body, parseIfMatch(ifMatch));
    res.setHeader('ETag', `"${view.revision}"`);
    return view;
  }

  @Get('desired-state')
  @ApiOperation({ summary: 'Get the current desired state', description: 'Revision 0 with `spec: null` when none was set. The ETag header is the revision.' })
  @ApiDeviceParam()
  @ApiOkResponse({ standardSchema: desiredRevisionView })
  @ApiErrors(404)
  async current(@Param('device') device: string, @Res({ passthrough: true }) res: Response) {
    const view = await this.desired.current(device);
    res.setHeader('ETag', `"${view.revision}"`);
    return view;
  }

  @Get('desired-state/revisions')
  @ApiOperation({ summary: 'Desired-state history', description: 'Newest first, without specs.' })
  @ApiDeviceParam()
  @ApiOkResponse({ standardSchema: revisionPage })
  @ApiErrors(400, 404)
  revisions(@Param('device') device: string, @Query({ schema: listRevisionsQuery }) query: ListRevisionsQuery) {
    return this.desired.revisions(device, query);
  }

  @Get('desired-state/revisions/:revision')
  @ApiOperation({ summary: 'One desired-state revision, with its spec' })
  @ApiDeviceParam()
  @ApiParam({ name: 'revision', type: 'integer' })
  @ApiOkResponse({ standardSchema: desiredRevisionView })
  @ApiErrors(400, 404)
  revision(@Param('device') device: string, @Param('revision', { schema: revisionParam }) revision: number) {
    return this.desired.revision(device, revision);
  }

  @Get('state')
  @ApiOperation({ summary: 'Reported state', description: 'Per section what the agent last reported, the desired/received/applied revisions and whether the device is in sync.' })
  @ApiDeviceParam()
  @ApiOkResponse({ standardSchema: deviceStateView })
  @ApiErrors(404)
  state(@Param('device') device: string) {
    return this.desired.state(device);
  }
}
