import { Body, Controller, Delete, Get, Header, HttpCode, Param, Patch, Post, Query } from '@nestjs/common';
import { ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { CurrentCaller } from '../auth/auth.decorators.js';
import { ApiErrors, ApiTokenAuth } from '../http/openapi.js';
import type { Caller } from '../http/request-context.js';
import { devicePage, deviceView, listDevicesQuery, type ListDevicesQuery, patchDeviceBody, type PatchDeviceBody } from './devices.dto.js';
import { DevicesService } from './devices.service.js';

/** `:device` in every device route: id or name. */
export const ApiDeviceParam = () => ApiParam({ name: 'device', description: 'Device id (uuid) or name.' });

@ApiTags('Devices')
@ApiTokenAuth()
@Controller('api/v1/devices')
export class DevicesController {
  constructor(private readonly devices: DevicesService) {}

  @Get()
  @ApiOperation({ summary: 'List devices', description: 'By name. Filter with a label `selector` and `status`.' })
  @ApiOkResponse({ standardSchema: devicePage })
  @ApiErrors(400)
  // The page comes as JSON text, sent as it is (devices.service.ts listJson).
  @Header('Content-Type', 'application/json; charset=utf-8')
  list(@Query({ schema: listDevicesQuery }) query: ListDevicesQuery): Promise<string> {
    return this.devices.listJson(query);
  }

  @Get(':device')
  @ApiOperation({ summary: 'Get a device' })
  @ApiDeviceParam()
  @ApiOkResponse({ standardSchema: deviceView })
  @ApiErrors(404)
  get(@Param('device') device: string) {
    return this.devices.get(device);
  }

  @Patch(':device')
  @ApiOperation({ summary: 'Change device labels', description: 'Merge: `{"labels": {"site": "lab", "old": null}}` sets site and removes old.' })
  @ApiDeviceParam()
  @ApiOkResponse({ standardSchema: deviceView })
  @ApiErrors(400, 404, 413)
  patch(@CurrentCaller() caller: Caller, @Param('device') device: string, @Body({ schema: patchDeviceBody }) body: PatchDeviceBody) {
    return this.devices.patch(caller, device, body);
  }

  @Post(':device/revoke')
  @HttpCode(200)
  @ApiOperation({ summary: 'Revoke a device', description: 'Revokes the device and its credentials and closes its stream at once. It must enroll again to come back.' })
  @ApiDeviceParam()
  @ApiOkResponse({ standardSchema: deviceView })
  @ApiErrors(404, 503)
  revoke(@CurrentCaller() caller: Caller, @Param('device') device: string) {
    return this.devices.revoke(caller, device);
  }

  @Delete(':device')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a device', description: 'Deletes it with its desired-state history, section states and jobs, and closes its stream.' })
  @ApiDeviceParam()
  @ApiNoContentResponse({ description: 'Deleted.' })
  @ApiErrors(404, 503)
  async remove(@CurrentCaller() caller: Caller, @Param('device') device: string): Promise<void> {
    await this.devices.remove(caller, device);
  }
}
