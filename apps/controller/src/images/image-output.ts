import type { Readable } from 'node:stream';
import { FileImageSink, type ImageOutputSink } from '@ibex/image';

/**
 * Where built images go. Now: FileImageSink under IBEX_IMAGE_DIR. This is the seam for the
 * artifact store (#8): a sink whose put() stores the stream as an Artifact (BlobStore) and returns
 * its ref, and whose open() streams it back; nothing else in the image builds changes.
 */
export interface ControllerImageSink extends ImageOutputSink {
  open(ref: string): Readable;
}

export const IMAGE_SINK = Symbol('IMAGE_SINK');

export const fileImageSink = (dir: string): ControllerImageSink => new FileImageSink(dir);
