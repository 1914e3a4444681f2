import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiCreatedResponse, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { AdminOnly, CurrentCaller } from '../auth/auth.decorators.js';
import { ApiErrors, ApiTokenAuth } from '../http/openapi.js';
import type { Caller } from '../http/request-context.js';
import {
  apiTokenPage,
  createApiTokenBody,
  type CreateApiTokenBody,
  createdApiTokenView,
  listApiTokensQuery,
  type ListApiTokensQuery,
} from './api-tokens.dto.js';
import { ApiTokensService } from './api-tokens.service.js';

@ApiTags('API tokens')
@ApiTokenAuth()
@AdminOnly()
@Controller('api/v1/api-tokens')
export class ApiTokensController {
  constructor(private readonly tokens: ApiTokensService) {}

  @Post()
  @ApiOperation({ summary: 'Create an API token (admin)', description: 'The secret is in the response once; only its SHA-256 hash is stored.' })
  @ApiCreatedResponse({ standardSchema: createdApiTokenView, description: 'The token, with its secret (shown once).' })
  @ApiErrors(400, 413)
  create(@CurrentCaller() caller: Caller, @Body({ schema: createApiTokenBody }) body: CreateApiTokenBody) {
    return this.tokens.create(caller, body);
  }

  @Get()
  @ApiOperation({ summary: 'List API tokens (admin)', description: 'Newest first. Never includes secrets.' })
  @ApiOkResponse({ standardSchema: apiTokenPage })
  @ApiErrors(400)
  list(@Query({ schema: listApiTokensQuery }) query: ListApiTokensQuery) {
    return this.tokens.list(query);
  }

  @Delete(':id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Revoke an API token (admin)', description: 'Takes effect on the next request. Revoking a revoked token does nothing.' })
  @ApiNoContentResponse({ description: 'Revoked.' })
  @ApiErrors(404, 409)
  async revoke(@CurrentCaller() caller: Caller, @Param('id') id: string): Promise<void> {
    await this.tokens.revoke(caller, id);
  }
}
