import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { LitebaseError, type ErrorCodeIn } from '../errors.js';

/**
 * The cold tier (docs/ARCHITECTURE.md §1): archived segments and checkpoints, the history that point-in-time
 * restore reads. One small interface, two implementations: a local folder (`file:///abs/path`, the
 * embedded default) and S3 or anything that speaks its API (`s3://bucket/prefix`: AWS, MinIO, R2,
 * Ceph).
 *
 * Keys are relative, '/'-separated paths ('databases/app/<id>/segments/<first>-<last>.seg'); the
 * store prepends its own prefix. Every key is checked by `assertObjectKey` before it reaches a
 * path or a request.
 */
export interface ObjectInfo {
  /** The key as given to `put`, without the store's prefix. */
  key: string;
  size: number;
  lastModified?: Date;
}

/**
 * Gives a Buffer of exactly `size` bytes at the start of a SharedArrayBuffer (which may be larger):
 * where a read into shared memory goes when the caller reuses its buffers
 * (src/threads/shared-buffer-pool.ts).
 */
export type SharedAllocator = (size: number) => Buffer;

export interface GetOptions {
  /**
   * Read into shared memory: `true` for a SharedArrayBuffer of the object's size, or an allocator
   * that gives the memory.
   */
  shared?: boolean | SharedAllocator;
}

const newSharedBuffer: SharedAllocator = (size) => Buffer.from(new SharedArrayBuffer(size));

/** Where a read into shared memory goes under `shared` (GetOptions). */
export function sharedAllocator(shared: true | SharedAllocator): SharedAllocator {
  return shared === true ? newSharedBuffer : shared;
}

/** `bytes` in shared memory, starting at its first byte: the same Buffer when it is there already, else a copy. */
export function inSharedMemory(bytes: Uint8Array, allocate: SharedAllocator = newSharedBuffer): Buffer {
  if (bytes.buffer instanceof SharedArrayBuffer && bytes.byteOffset === 0) return Buffer.from(bytes.buffer, 0, bytes.byteLength);
  const shared = allocate(bytes.byteLength);
  shared.set(bytes);
  return shared;
}

export interface ObjectStore {
  /** Where the store lives, for logs and error messages. Never holds a secret. */
  readonly url: string;
  /**
   * Stores a whole object, replacing any object under that key. Readers see the old object or the
   * new one, never a part. A stream is read in part-size chunks, so memory stays bounded and no
   * length is needed up front.
   */
  put(key: string, body: Uint8Array | Readable): Promise<void>;
  /** Stores a file from disk by streaming it (multipart above the part size on S3). */
  putFile(key: string, filePath: string): Promise<void>;
  /**
   * Reads an object whole. Throws OBJECT_NOT_FOUND when the key is absent. With `shared`, the
   * Buffer starts at the first byte of a SharedArrayBuffer (of exactly its length, or the
   * allocator's), which worker threads can read without a copy (a restore's page-writing threads
   * decode bundles straight from it).
   */
  get(key: string, options?: GetOptions): Promise<Buffer>;
  /**
   * Opens a large object as a stream. Throws OBJECT_NOT_FOUND when the key is absent. An error
   * while the stream is read (a dropped connection) reaches the reader as a stream error, not
   * retried: use `getToFile` when the whole object is wanted.
   */
  getStream(key: string): Promise<Readable>;
  /**
   * Copies an object to a local file: written to a temp file beside it, fsynced, then renamed over
   * `filePath`, so the file is either absent, the old one, or the whole object. Parent folders are
   * created as needed. Throws OBJECT_NOT_FOUND when the key is absent.
   */
  getToFile(key: string, filePath: string): Promise<void>;
  /** Size and time of an object, or undefined when the key is absent. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /**
   * Every object whose key starts with `prefix` ('' for all), in byte order of the UTF-8 keys.
   * `prefix` is a plain string prefix: 'segments/0001' matches 'segments/00012-00020.seg'.
   */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /** Deletes objects in batches. Keys that are already absent are not an error. */
  delete(keys: readonly string[]): Promise<void>;
  /** Checks that the bucket or folder exists and that the credentials work. */
  verify(): Promise<void>;
  /** Releases connections. The store must not be used afterwards. */
  close(): Promise<void>;
}

/** OBJECT_KEY_INVALID, OBJECT_NOT_FOUND, OBJECT_STORE_*: their meaning and status are in src/error-codes.ts. */
export type ObjectStoreErrorCode = ErrorCodeIn<'object-store'>;

export class ObjectStoreError extends LitebaseError {
  declare readonly code: ObjectStoreErrorCode;

  constructor(code: ObjectStoreErrorCode, message: string, options: { details?: Record<string, unknown>; cause?: unknown } = {}) {
    super(code, message, {
      ...(options.details ? { details: options.details } : {}),
      ...(options.cause === undefined ? {} : { cause: options.cause }),
    });
    this.name = 'ObjectStoreError';
  }
}

export interface S3ObjectStoreOptions {
  /** Custom endpoint for MinIO, R2, Ceph, s3rver: 'http://127.0.0.1:9000'. Absent: AWS S3. */
  endpoint?: string;
  /** Default 'us-east-1'. On AWS a bucket in another region is still found (region redirects). */
  region?: string;
  /** Path-style URLs (endpoint/bucket/key). Default: true with a custom endpoint, false without. */
  forcePathStyle?: boolean;
  /** Static credentials. Absent: the AWS SDK's default chain (env, profile, SSO, IMDS, ...). */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Attempts per request, the first included, for transient errors. Default 5. */
  maxAttempts?: number;
  /** Multipart part size in bytes; objects larger than one part are uploaded in parts. Default 16 MiB, at least 5 MiB. */
  partSize?: number;
  /** Parts of one file uploaded at a time. Default 4. */
  partConcurrency?: number;
  /** Keys per ListObjectsV2 page, 1..1000. Default 1000; tests set it low to prove pagination. */
  listPageSize?: number;
  /** Milliseconds to open a connection. Default 10 000. */
  connectionTimeoutMs?: number;
  /** Milliseconds a connection may stay silent, body transfer included, before it is dropped and retried. Default 60 000. */
  socketTimeoutMs?: number;
}

export interface ObjectStoreOptions extends S3ObjectStoreOptions {
  /** Where retries and SDK warnings are logged. */
  logger?: Logger;
}

/** Drops user:password@ from a URL before it reaches a log. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@]*@/i, '$1');
}

/** S3's limit on a key, prefix included. */
const MAX_KEY_BYTES = 1024;

/**
 * Why `key` is not a valid key, or undefined. A key is '/'-separated segments; a segment is never
 * empty and never starts with '.' (which rules out '.' and '..', and keeps names starting with '.'
 * free for the file store's temp files); no leading '/', no backslash, no control characters.
 */
export function keyProblem(key: string): string | undefined {
  if (key === '') return 'is empty';
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) return `is longer than ${MAX_KEY_BYTES} bytes`;
  if (key.startsWith('/')) return "starts with '/'";
  if (key.includes('\\')) return 'contains a backslash';
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) return 'contains a control character';
  for (const segment of key.split('/')) {
    if (segment === '') return 'has an empty segment';
    if (segment.startsWith('.')) return "has a segment starting with '.'";
  }
  return undefined;
}

export function isValidObjectKey(key: string): boolean {
  return keyProblem(key) === undefined;
}

export function assertObjectKey(key: string, storeUrl: string): string {
  const problem = typeof key === 'string' ? keyProblem(key) : 'is not a string';
  if (problem !== undefined) {
    throw new ObjectStoreError(
      'OBJECT_KEY_INVALID',
      `object key ${JSON.stringify(String(key).slice(0, 200))} ${problem} (store ${storeUrl})`,
      {
        details: { store: storeUrl, key: String(key).slice(0, 200) },
      },
    );
  }
  return key;
}

/** A list prefix is '' or a key, optionally ending with '/'. */
export function assertObjectPrefix(prefix: string, storeUrl: string): string {
  if (prefix === '') return prefix;
  const problem = typeof prefix === 'string' ? keyProblem(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix) : 'is not a string';
  if (problem !== undefined) {
    throw new ObjectStoreError(
      'OBJECT_KEY_INVALID',
      `list prefix ${JSON.stringify(String(prefix).slice(0, 200))} ${problem} (store ${storeUrl})`,
      {
        details: { store: storeUrl, key: String(prefix).slice(0, 200) },
      },
    );
  }
  return prefix;
}

/** Orders keys as S3 does: by the bytes of their UTF-8 encoding. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}
