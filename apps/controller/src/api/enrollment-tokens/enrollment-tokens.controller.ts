import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Req } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { Request } from 'express';
import { CurrentCaller } from '../auth/auth.decorators.js';
import { ApiErrors, ApiTokenAuth } from '../http/openapi.js';
import type { Caller } from '../http/request-context.js';
import {
  createdEnrollmentTokenView,
  createEnrollmentTokenBody,
  type CreateEnrollmentTokenBody,
  enrollmentTokenPage,
  listEnrollmentTokensQuery,
  type ListEnrollmentTokensQuery,
} from './enrollment-tokens.dto.js';
import { EnrollmentTokensService } from './enrollment-tokens.service.js';

@ApiTags('Enrollment tokens')
@ApiTokenAuth()
@Controller('api/v1/enrollment-tokens')
export class EnrollmentTokensController {
  constructor(private readonly tokens: EnrollmentTokensService) {}

  @Post()
  @ApiOperation({
    summary: 'Create an enrollment token',
    description: 'Returns the secret once, with a ready `enrollCommand` (host from this request, the gRPC port of this controller).',
  })
  @ApiCreatedResponse({ standardSchema: createdEnrollmentTokenView })
  @ApiErrors(400, 413)
  create(@CurrentCaller() caller: Caller, @Body({ schema: createEnrollmentTokenBody }) body: CreateEnrollmentTokenBody, @Req() req: Request) {
    return this.tokens.create(caller, body, req.hostname);
  }

  @Get()
  @ApiOperation({ summary: 'List enrollment tokens', description: 'Newest first, with status and uses. Never includes secrets.' })
  @ApiOkResponse({ standardSchema: enrollmentTokenPage })
  @ApiErrors(400)
  list(@Query({ schema: listEnrollmentTokensQuery }) query: ListEnrollmentTokensQuery) {
    return this.tokens.list(query);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke an enrollment token', description: 'No device can enroll with it afterwards; enrolled devices are not affected.' })
  @ApiNoContentResponse({ description: 'Revoked.' })
  @ApiErrors(404)
  async revoke(@CurrentCaller() caller: Caller, @Param('id') id: string): Promise<void> {
    await this.tokens.revoke(caller, id);
  }
}
