import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { FileObjectStore } from './file-object-store.js';
import {
  keyProblem,
  ObjectStoreError,
  redactUrl,
  type GetOptions,
  type ObjectInfo,
  type ObjectStore,
  type ObjectStoreOptions,
} from './object-store.js';
import type { S3ObjectStore, S3ObjectStoreConfig } from './s3-object-store.js';

/*
 * The object-store factory, apart from the interface (src/storage/object-store.ts) so that the
 * interface imports none of its implementations: a URL in, the store it names out. The S3 store is
 * loaded lazily (see LazyS3ObjectStore).
 */

/**
 * Opens the store a URL names: `file:///abs/path` or `s3://bucket/optional/prefix`. S3 settings
 * come from `options`; reading them from flags or the environment is the caller's job. Opening
 * does no I/O: call `verify()` to fail early on a missing bucket or wrong credentials.
 */
export function openObjectStore(url: string, options: ObjectStoreOptions = {}): ObjectStore {
  if (url.startsWith('file:')) {
    if (!url.startsWith('file:///') && !url.startsWith('file://localhost/')) {
      throw invalidUrl(url, 'a file URL must be file:///absolute/path');
    }
    let root: string;
    try {
      root = fileURLToPath(url);
    } catch (error) {
      throw invalidUrl(url, 'a file URL must be file:///absolute/path', error);
    }
    if (!path.isAbsolute(root)) throw invalidUrl(url, 'a file URL must be file:///absolute/path');
    return new FileObjectStore(path.resolve(root));
  }
  if (url.startsWith('s3://')) {
    const rest = url.slice('s3://'.length);
    const slash = rest.indexOf('/');
    const bucket = slash === -1 ? rest : rest.slice(0, slash);
    const prefix = (slash === -1 ? '' : rest.slice(slash + 1)).replace(/\/+$/, '');
    if (!BUCKET_PATTERN.test(bucket)) {
      throw invalidUrl(url, `bucket ${JSON.stringify(bucket)} must match ${BUCKET_PATTERN.source}`);
    }
    if (prefix !== '' && keyProblem(prefix) !== undefined) {
      throw invalidUrl(url, `prefix ${JSON.stringify(prefix)}: ${keyProblem(prefix) ?? ''}`);
    }
    if ((options.accessKeyId === undefined) !== (options.secretAccessKey === undefined)) {
      throw invalidUrl(url, 'give both accessKeyId and secretAccessKey, or neither (to use the AWS default credential chain)');
    }
    return new LazyS3ObjectStore({ ...options, bucket, prefix });
  }
  throw invalidUrl(url, 'expected file:///absolute/path or s3://bucket/optional/prefix');
}

/**
 * An S3 store whose AWS SDK is loaded on first use: loading it takes a quarter of a second, which
 * processes that use a folder store (or no store yet) should not pay, and `litebase restore` pays
 * for every run. The options that can be wrong without a request are checked at once, as
 * S3ObjectStore checks them.
 */
class LazyS3ObjectStore implements ObjectStore {
  readonly url: string;
  private store: Promise<S3ObjectStore> | undefined;

  constructor(private readonly config: S3ObjectStoreConfig) {
    this.url = `s3://${config.bucket}${config.prefix === '' ? '' : `/${config.prefix}`}`;
    for (const name of ['maxAttempts', 'partSize', 'partConcurrency', 'listPageSize'] as const) {
      const value = config[name];
      if (value !== undefined && (!Number.isSafeInteger(value) || value < 1)) {
        throw new ObjectStoreError(
          'OBJECT_STORE_URL_INVALID',
          `object store ${this.url}: ${name} must be a positive integer, got ${value}`,
        );
      }
    }
    if (config.partSize !== undefined && config.partSize < S3_MIN_PART_SIZE) {
      throw new ObjectStoreError(
        'OBJECT_STORE_URL_INVALID',
        `object store ${this.url}: partSize must be at least ${S3_MIN_PART_SIZE} bytes (S3's minimum)`,
      );
    }
  }

  private open(): Promise<S3ObjectStore> {
    this.store ??= import('./s3-object-store.js').then(({ S3ObjectStore }) => new S3ObjectStore(this.config));
    return this.store;
  }

  async put(key: string, body: Uint8Array | Readable): Promise<void> {
    return (await this.open()).put(key, body);
  }

  async putFile(key: string, filePath: string): Promise<void> {
    return (await this.open()).putFile(key, filePath);
  }

  async get(key: string, options?: GetOptions): Promise<Buffer> {
    return (await this.open()).get(key, options);
  }

  async getStream(key: string): Promise<Readable> {
    return (await this.open()).getStream(key);
  }

  async getToFile(key: string, filePath: string): Promise<void> {
    return (await this.open()).getToFile(key, filePath);
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    return (await this.open()).head(key);
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    yield* (await this.open()).list(prefix);
  }

  async delete(keys: readonly string[]): Promise<void> {
    return (await this.open()).delete(keys);
  }

  async verify(): Promise<void> {
    return (await this.open()).verify();
  }

  async close(): Promise<void> {
    if (this.store) await (await this.store).close();
  }
}

/** S3's smallest multipart part (all but the last); S3ObjectStore checks the same. */
const S3_MIN_PART_SIZE = 5 * 1024 * 1024;

/** Lenient enough for R2 and Ceph's legacy names, strict enough to keep a URL unambiguous. */
const BUCKET_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{1,254}$/;

function invalidUrl(url: string, reason: string, cause?: unknown): ObjectStoreError {
  return new ObjectStoreError('OBJECT_STORE_URL_INVALID', `object store URL ${JSON.stringify(redactUrl(url))}: ${reason}`, {
    ...(cause === undefined ? {} : { cause }),
  });
}
