/**
 * A restore's hashing thread (started by src/restore/restore-hasher.ts): computes page hashes
 * (SHA-256 of the page number and the image, the first 64 bits) into the restore's shared array of
 * hashes, and SHA-256 digests of whole objects. Pages come as records (page number, image) in a
 * shared staging buffer the restore reuses once answered; an object's buffer comes by transfer and
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
      /** `count` records of 4 + pageSize bytes: the page number (big-endian), then the image. */
      records: SharedArrayBuffer;
      count: number;
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

export function hashPages(request: Extract<HashRequest, { kind: 'pages' }>): void {
  const { records, count, pageSize } = request;
  const hashes = new Uint32Array(request.hashes);
  const view = new DataView(records);
  const stride = 4 + pageSize;
  for (let i = 0; i < count; i++) {
    const pageNumber = view.getUint32(i * stride);
    // The page hash is of the page number and the image together: exactly one record.
    const digest = hash('sha256', new Uint8Array(records, i * stride, stride), 'buffer') as Buffer;
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
