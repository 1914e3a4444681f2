import { Controller, Get } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import { ApiTokenAuth } from '../http/openapi.js';
import { fleetSummaryView } from './fleet.dto.js';
import { FleetService } from './fleet.service.js';

@ApiTags('Devices')
@ApiTokenAuth()
@Controller('api/v1/fleet')
export class FleetController {
  constructor(private readonly fleet: FleetService) {}

  @Get('summary')
  @ApiOperation({ summary: 'Fleet summary', description: 'Devices by status and by sync (drifting, failed, ...), and unfinished jobs by status.' })
  @ApiOkResponse({ standardSchema: fleetSummaryView })
  summary() {
    return this.fleet.summary();
  }
}
