/**
 * A restore's hashing thread (started by src/restore/restore-hasher.ts): computes page hashes
 * (SHA-256 of the page number and the image, the first 64 bits) into the restore's shared array of
 * hashes, and SHA-256 digests of whole objects. The buffers come by transfer; an object's buffer
 * goes back with its digest. One restore's requests all come to the same thread, in order, so a
 * `done` request is answered once everything that restore sent before it is hashed.
 */
import { createHash, hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

export type HashRequest =
  /** Answered as soon as the thread runs: until then the restore hashes objects itself. */
  | { id: number; kind: 'ready' }
  | { id: number; kind: 'digest'; buffer: ArrayBuffer; length: number }
  | {
      id: number;
      kind: 'pages';
      /** Page p's hash goes to [2p - 2] (high 32 bits) and [2p - 1] (low) of this Uint32Array's memory. */
      hashes: SharedArrayBuffer;
      pageSize: number;
      buffers: ArrayBuffer[];
      /** Triples: index into `buffers`, offset of the image in it, page number. */
      pages: Float64Array;
    }
  /** Answered once everything sent before it is hashed. */
  | { id: number; kind: 'done' };

export interface HashReply {
  id: number;
  /** kind 'digest': the SHA-256 (hex), and the buffer that was hashed, handed back. */
  digest?: string;
  buffer?: ArrayBuffer;
  error?: string;
}

const prefix = Buffer.allocUnsafe(4);

export function hashPages(request: Extract<HashRequest, { kind: 'pages' }>): void {
  const { buffers, pages, pageSize } = request;
  const hashes = new Uint32Array(request.hashes);
  for (let i = 0; i < pages.length; i += 3) {
    const buffer = buffers[pages[i] as number] as ArrayBuffer;
    const offset = pages[i + 1] as number;
    const pageNumber = pages[i + 2] as number;
    let digest: Buffer;
    // The page number often sits right before the image (a segment's page record): hash both in one go.
    if (offset >= 4 && new DataView(buffer, offset - 4, 4).getUint32(0) === pageNumber) {
      digest = hash('sha256', new Uint8Array(buffer, offset - 4, pageSize + 4), 'buffer');
    } else {
      prefix.writeUInt32BE(pageNumber, 0);
      digest = createHash('sha256')
        .update(prefix)
        .update(new Uint8Array(buffer, offset, pageSize))
        .digest();
    }
    hashes[2 * pageNumber - 2] = digest.readUInt32BE(0);
    hashes[2 * pageNumber - 1] = digest.readUInt32BE(4);
  }
}

function answer(request: HashRequest): void {
  const { id } = request;
  try {
    if (request.kind === 'digest') {
      const digest = createHash('sha256')
        .update(new Uint8Array(request.buffer, 0, request.length))
        .digest('hex');
      parentPort?.postMessage({ id, digest, buffer: request.buffer } satisfies HashReply, [request.buffer]);
      return;
    }
    if (request.kind === 'pages') hashPages(request);
    parentPort?.postMessage({ id } satisfies HashReply);
  } catch (error) {
    parentPort?.postMessage({ id, error: error instanceof Error ? error.message : String(error) } satisfies HashReply);
  }
}

parentPort?.on('message', answer);
