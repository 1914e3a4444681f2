import { Body, Controller, Get, Header, Param, Post, Res, StreamableFile } from '@nestjs/common';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiParam, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { Response } from 'express';
import { CurrentCaller } from '../auth/auth.decorators.js';
import { ApiErrors, ApiTokenAuth } from '../http/openapi.js';
import type { Caller } from '../http/request-context.js';
import { createImageBuildBody, type CreateImageBuildBody, imageBuildView } from './image-builds.dto.js';
import { ImageBuildsService } from './image-builds.service.js';

const ApiBuildParam = () => ApiParam({ name: 'id', description: 'Image build id (uuid).' });

@ApiTags('Image builds')
@ApiTokenAuth()
@Controller('api/v1/image-builds')
export class ImageBuildsController {
  constructor(private readonly builds: ImageBuildsService) {}

  @Post()
  @ApiOperation({
    summary: 'Build a VM image',
    description: 'Validates the image spec (400 names the field, e.g. `spec.hostname`) and queues the build. Follow it with GET; download the result when `status` is succeeded. docs/images.md.',
  })
  @ApiCreatedResponse({ standardSchema: imageBuildView })
  @ApiErrors(400, 413)
  create(@CurrentCaller() caller: Caller, @Body({ schema: createImageBuildBody }) body: CreateImageBuildBody) {
    return this.builds.create(caller, body);
  }

  @Get(':id')
  @ApiOperation({ summary: 'An image build', description: 'Status, attempt, progress (percent and step), and once built its sha256, size and download URL.' })
  @ApiBuildParam()
  @ApiOkResponse({ standardSchema: imageBuildView })
  @ApiErrors(404)
  get(@Param('id') id: string) {
    return this.builds.get(id);
  }

  @Get(':id/image')
  @ApiOperation({ summary: 'Download a built image', description: 'The gzip\'d cpio newc archive (boot it as the initrd). 409 while the build is not succeeded.' })
  @ApiBuildParam()
  @ApiProduces('application/gzip')
  @ApiOkResponse({ description: 'The image; `ETag` is its sha256.' })
  @ApiErrors(404, 409)
  @Header('Content-Type', 'application/gzip')
  async download(@Param('id') id: string, @Res({ passthrough: true }) res: Response): Promise<StreamableFile> {
    const img = await this.builds.download(id);
    res.setHeader('ETag', `"${img.sha256}"`);
    return new StreamableFile(img.stream, { disposition: `attachment; filename="${img.filename}"`, length: img.size });
  }
}
