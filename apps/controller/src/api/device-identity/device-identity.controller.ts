import { Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiOkResponse, ApiOperation, ApiParam, ApiTags } from '@nestjs/swagger';
import { CurrentCaller } from '../auth/auth.decorators.js';
import { ApiDeviceParam } from '../devices/devices.controller.js';
import { ApiErrors, ApiTokenAuth } from '../http/openapi.js';
import type { Caller } from '../http/request-context.js';
import { certificateView, credentialView, deviceIdentityView } from './device-identity.dto.js';
import { DeviceIdentityService } from './device-identity.service.js';

@ApiTags('Devices')
@ApiTokenAuth()
@Controller('api/v1/devices/:device')
export class DeviceIdentityController {
  constructor(private readonly identity: DeviceIdentityService) {}

  @Get('identity')
  @ApiOperation({ summary: "List a device's credentials and certificates" })
  @ApiDeviceParam()
  @ApiOkResponse({ standardSchema: deviceIdentityView })
  @ApiErrors(404)
  get(@Param('device') device: string) {
    return this.identity.get(device);
  }

  @Post('credentials/:credential/revoke')
  @HttpCode(200)
  @ApiOperation({ summary: 'Revoke a device credential', description: 'The stream that connected with it ends at once, on whichever replica holds it. Revoking again changes nothing.' })
  @ApiDeviceParam()
  @ApiParam({ name: 'credential', description: 'Credential id (uuid).' })
  @ApiOkResponse({ standardSchema: credentialView })
  @ApiErrors(404, 503)
  revokeCredential(@CurrentCaller() caller: Caller, @Param('device') device: string, @Param('credential') credential: string) {
    return this.identity.revokeCredential(caller, device, credential);
  }

  @Post('certificates/:certificate/revoke')
  @HttpCode(200)
  @ApiOperation({ summary: 'Revoke a device certificate', description: 'The stream that connected with it ends at once, on whichever replica holds it, and the certificate can neither connect nor renew again.' })
  @ApiDeviceParam()
  @ApiParam({ name: 'certificate', description: 'Certificate id (uuid) or serial number (hex).' })
  @ApiOkResponse({ standardSchema: certificateView })
  @ApiErrors(404, 503)
  revokeCertificate(@CurrentCaller() caller: Caller, @Param('device') device: string, @Param('certificate') certificate: string) {
    return this.identity.revokeCertificate(caller, device, certificate);
  }
}
