import { Controller, Get, Query } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiErrors, ApiTokenAuth } from '../http/openapi.js';
import { auditPage, listAuditQuery, type ListAuditQuery } from './audit-log.dto.js';
import { AuditLogService } from './audit-log.service.js';

@ApiTags('Audit log')
@ApiTokenAuth()
@Controller('api/v1/audit')
export class AuditLogController {
  constructor(private readonly audit: AuditLogService) {}

  @Get()
  @ApiOperation({ summary: 'Audit log', description: 'Every change made through the API (and by devices and the controller), newest first.' })
  @ApiOkResponse({ standardSchema: auditPage })
  @ApiErrors(400)
  list(@Query({ schema: listAuditQuery }) query: ListAuditQuery) {
    return this.audit.list(query);
  }
}
