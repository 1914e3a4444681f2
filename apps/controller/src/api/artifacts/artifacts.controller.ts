import { Controller, Delete, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import { ApiBody, ApiConsumes, ApiHeader, ApiNoContentResponse, ApiOkResponse, ApiOperation, ApiParam, ApiProduces, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import type { Artifact } from '../../generated/prisma/client.js';
import { ArtifactsService } from '../../artifacts/artifacts.service.js';
import { CurrentCaller, DevicesMayRead } from '../auth/auth.decorators.js';
import { newestFirstKey, newestFirstOrder, olderThan, toPage } from '../http/pagination.js';
import { ApiErrors, ApiTokenAuth } from '../http/openapi.js';
import type { Caller } from '../http/request-context.js';
import { iso } from '../http/schemas.js';
import { artifactPage, artifactView, type ArtifactView, listArtifactsQuery, type ListArtifactsQuery, uploadArtifactQuery, type UploadArtifactQuery } from './artifacts.dto.js';
import { decideRange } from './http-range.js';

export const ARTIFACTS_PATH = 'api/v1/artifacts';
const UPLOAD_IDLE_MS = 60_000;

export function toArtifactView(a: Artifact): ArtifactView {
  return {
    id: a.id,
    name: a.name,
    version: a.version,
    ref: `${a.name}@${a.version}`,
    kind: a.kind as ArtifactView['kind'],
    sha256: a.sha256,
    size: Number(a.size),
    contentType: a.contentType,
    labels: a.labels as Record<string, string>,
    architectures: a.architectures,
    createdBy: a.createdBy,
    createdAt: iso(a.createdAt),
    downloadPath: `/${ARTIFACTS_PATH}/${a.id}/download`,
  };
}

const ApiArtifactParam = () => ApiParam({ name: 'artifact', description: 'Artifact id or name@version.' });

@ApiTags('Artifacts')
@ApiTokenAuth()
@Controller(ARTIFACTS_PATH)
export class ArtifactsController {
  constructor(private readonly artifacts: ArtifactsService) {}

  @Post()
  @ApiOperation({
    summary: 'Upload an artifact (streamed)',
    description:
      'The request body is the file itself (any Content-Type, stored as the artifact\'s content type), streamed to disk and never held in memory. ' +
      '`Content-Length` is required (411 without it); over IBEX_ARTIFACT_MAX_BYTES is 413 before any of the body is read. ' +
      'With `sha256` the body must match it (400 otherwise). The artifact becomes visible only once every byte is on disk and checked; ' +
      'the same bytes uploaded under several names are stored once.',
  })
  @ApiConsumes('application/octet-stream')
  @ApiBody({ description: 'The file.', schema: { type: 'string', format: 'binary' } })
  @ApiHeader({ name: 'Content-Length', required: true, description: 'Exact size in bytes.' })
  @ApiResponse({ status: 201, standardSchema: artifactView, description: 'The stored artifact.' })
  @ApiErrors(400, 409, 411, 413)
  async upload(@CurrentCaller() caller: Caller, @Query({ schema: uploadArtifactQuery }) q: UploadArtifactQuery, @Req() req: Request, @Res({ passthrough: true }) res: Response): Promise<ArtifactView> {
    const meta = {
      name: q.name,
      version: q.version,
      kind: q.kind,
      ...(q.sha256 ? { sha256: q.sha256 } : {}),
      contentType: (req.get('content-type') ?? 'application/octet-stream').slice(0, 200),
      labels: Object.fromEntries((q.labels ?? []).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)])),
      architectures: q.architectures ?? [],
    };
    let size: number;
    try {
      size = await this.artifacts.precheck(meta, req.get('content-length'));
    } catch (err) {
      // The body was not read: close the connection rather than read (and discard) all of it.
      res.setHeader('Connection', 'close');
      throw err;
    }
    const aborted = new AbortController();
    req.once('close', () => !req.complete && aborted.abort(new Error('the client closed the connection before the upload ended')));
    // A client that stops sending is dropped after a minute (the staged bytes are removed).
    req.socket.setTimeout(UPLOAD_IDLE_MS, () => req.socket.destroy());
    const a = await this.artifacts.upload(caller, meta, req, size, aborted.signal);
    req.socket.setTimeout(0);
    res.status(201);
    return toArtifactView(a);
  }

  @Get()
  @ApiOperation({ summary: 'List artifacts', description: 'Newest first.' })
  @ApiOkResponse({ standardSchema: artifactPage })
  @ApiErrors(400)
  async list(@Query({ schema: listArtifactsQuery }) q: ListArtifactsQuery) {
    const where = { AND: [olderThan(q.cursor), ...(q.name ? [{ name: q.name }] : []), ...(q.kind ? [{ kind: q.kind }] : []), ...(q.sha256 ? [{ sha256: q.sha256 }] : [])] };
    return toPage(await this.artifacts.list(where, q.limit + 1, newestFirstOrder), q.limit, newestFirstKey, toArtifactView);
  }

  @Get(':artifact')
  @ApiOperation({ summary: 'One artifact' })
  @ApiArtifactParam()
  @ApiOkResponse({ standardSchema: artifactView })
  @ApiErrors(404)
  async get(@Param('artifact') ref: string) {
    return toArtifactView(await this.artifacts.find(ref));
  }

  @Delete(':artifact')
  @HttpCode(204)
  @ApiOperation({
    summary: 'Delete an artifact',
    description: 'Refused with 409 naming the referrers while a device\'s current desired state, an unfinished job (or a module registered as a referrer) still uses it. Its bytes go when no other artifact has them.',
  })
  @ApiArtifactParam()
  @ApiNoContentResponse({ description: 'Deleted.' })
  @ApiErrors(404, 409)
  async delete(@CurrentCaller() caller: Caller, @Param('artifact') ref: string): Promise<void> {
    await this.artifacts.delete(caller, ref);
  }

  @Get(':artifact/download')
  @DevicesMayRead()
  @ApiOperation({
    summary: 'Download an artifact (HTTP Range)',
    description:
      'With an API token or a device credential (`Authorization: Bearer ibxd_...`). One `Range: bytes=a-b` range is answered 206 with Content-Range; ' +
      'a range past the end is 416. The ETag is the quoted sha256 (use it with If-Range when resuming).',
  })
  @ApiArtifactParam()
  @ApiProduces('application/octet-stream')
  @ApiHeader({ name: 'Range', required: false, description: 'bytes=START-[END] or bytes=-SUFFIX' })
  @ApiHeader({ name: 'If-Range', required: false, description: 'The ETag from the first response: ranges apply only while it still matches.' })
  @ApiResponse({ status: 200, description: 'The whole file.', schema: { type: 'string', format: 'binary' } })
  @ApiResponse({ status: 206, description: 'The requested range.', schema: { type: 'string', format: 'binary' } })
  @ApiErrors(404, 409, 416)
  async download(@Param('artifact') ref: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    const blob = await this.artifacts.blob(ref);
    const etag = `"${blob.artifact.sha256}"`;
    const decision = decideRange(req.get('range'), blob.size, req.get('if-range'), etag);
    res.setHeader('Accept-Ranges', 'bytes');
    res.setHeader('ETag', etag);
    if (decision.kind === 'unsatisfiable') {
      res.setHeader('Content-Range', `bytes */${blob.size}`);
      res.status(416).json({
        error: { code: 'range_not_satisfiable', message: `the range ${req.get('range')} starts at or past the end of artifact ${blob.artifact.name}@${blob.artifact.version} (${blob.size} bytes)` },
        requestId: res.getHeader('X-Request-Id'),
      });
      return;
    }
    const range = decision.kind === 'partial' ? { start: decision.start, end: decision.end } : undefined;
    res.status(range ? 206 : 200);
    res.setHeader('Content-Type', blob.artifact.contentType);
    res.setHeader('Content-Length', String(range ? range.end - range.start + 1 : blob.size));
    if (range) res.setHeader('Content-Range', `bytes ${range.start}-${range.end}/${blob.size}`);
    res.setHeader('Content-Disposition', `attachment; filename="${blob.artifact.name}-${blob.artifact.version}"`);
    if (req.method === 'HEAD' || blob.size === 0) {
      res.end();
      return;
    }
    // A client that goes away mid-download is normal (it resumes with Range): send() just stops.
    await blob.send(res, range);
    if (!res.destroyed) res.end();
  }
}
