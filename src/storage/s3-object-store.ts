import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, promises as fs } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
  type CompletedPart,
  type GetObjectCommandOutput,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import type { Logger } from 'pino';
import { errorMessage, systemErrorCode } from '../errors.js';
import { fsyncDir, tempName } from './fs-util.js';
import {
  assertObjectKey,
  assertObjectPrefix,
  compareKeys,
  inSharedMemory,
  sharedAllocator,
  type SharedAllocator,
  isValidObjectKey,
  ObjectStoreError,
  redactUrl,
  type ObjectInfo,
  type ObjectStore,
  type ObjectStoreErrorCode,
  type ObjectStoreOptions,
  type GetOptions,
} from './object-store.js';

const MiB = 1024 * 1024;
/** S3's smallest part (all but the last) and its largest part count. */
export const MIN_PART_SIZE = 5 * MiB;
const MAX_PARTS = 10_000;
const DEFAULT_PART_SIZE = 16 * MiB;
const DELETE_BATCH = 1000;
const RETRY_BASE_DELAY_MS = 100;
const RETRY_MAX_DELAY_MS = 20_000;

export interface S3ObjectStoreConfig extends ObjectStoreOptions {
  bucket: string;
  /** '' or a key without a trailing '/'. */
  prefix: string;
}

/**
 * The object store on S3 or a compatible server. Requests go through @aws-sdk/client-s3, which
 * retries transient errors (5xx, throttling, network) with exponential backoff and full jitter up
 * to `maxAttempts`. The SDK cannot resend a streamed body, so every streamed upload (a small file,
 * each part of a large one) and every download whose body breaks off is retried here with the
 * same backoff, reopening its stream each time.
 *
 * Checksums: requests carry one only where S3 requires it (`WHEN_REQUIRED`), because MinIO, Ceph
 * and R2 versions differ in what they accept; segments and checkpoints carry their own checksums.
 */
export class S3ObjectStore implements ObjectStore {
  readonly url: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  /** '' or 'some/prefix/'. */
  private readonly keyPrefix: string;
  private readonly where: string;
  private readonly maxAttempts: number;
  private readonly partSize: number;
  private readonly partConcurrency: number;
  private readonly listPageSize: number;
  private readonly logger: Logger | undefined;

  constructor(config: S3ObjectStoreConfig) {
    this.bucket = config.bucket;
    this.keyPrefix = config.prefix === '' ? '' : `${config.prefix}/`;
    this.url = `s3://${config.bucket}${config.prefix === '' ? '' : `/${config.prefix}`}`;
    this.where = config.endpoint === undefined ? this.url : `${this.url} at ${redactUrl(config.endpoint)}`;
    this.maxAttempts = positiveInteger(config.maxAttempts ?? 5, 'maxAttempts', this.url);
    this.partSize = positiveInteger(config.partSize ?? DEFAULT_PART_SIZE, 'partSize', this.url);
    if (this.partSize < MIN_PART_SIZE) {
      throw new ObjectStoreError(
        'OBJECT_STORE_URL_INVALID',
        `object store ${this.url}: partSize must be at least ${MIN_PART_SIZE} bytes (S3's minimum)`,
      );
    }
    this.partConcurrency = positiveInteger(config.partConcurrency ?? 4, 'partConcurrency', this.url);
    this.listPageSize = Math.min(1000, positiveInteger(config.listPageSize ?? 1000, 'listPageSize', this.url));
    this.logger = config.logger;

    const clientConfig: S3ClientConfig = {
      region: config.region ?? 'us-east-1',
      forcePathStyle: config.forcePathStyle ?? config.endpoint !== undefined,
      followRegionRedirects: true,
      maxAttempts: this.maxAttempts,
      retryMode: 'standard',
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // socketTimeout: inactivity on the socket, body transfer included (a stalled download fails).
      requestHandler: { connectionTimeout: config.connectionTimeoutMs ?? 10_000, socketTimeout: config.socketTimeoutMs ?? 60_000 },
      logger: sdkLogger(config.logger),
    };
    if (config.endpoint !== undefined) clientConfig.endpoint = config.endpoint;
    if (config.accessKeyId !== undefined && config.secretAccessKey !== undefined) {
      clientConfig.credentials = {
        accessKeyId: config.accessKeyId,
        secretAccessKey: config.secretAccessKey,
        ...(config.sessionToken === undefined ? {} : { sessionToken: config.sessionToken }),
      };
    }
    this.client = new S3Client(clientConfig);
    addDeleteObjectsContentMd5(this.client);
  }

  async put(key: string, body: Uint8Array | Readable): Promise<void> {
    const objectKey = this.objectKey(key);
    if (body instanceof Uint8Array) {
      await this.send('put', key, () =>
        this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: body, ContentLength: body.byteLength })),
      );
      return;
    }
    const parts = chunks(body, this.partSize);
    try {
      await this.putParts(key, parts);
    } finally {
      await parts.return(undefined); // on failure: stops reading and destroys the source stream
    }
  }

  /** Reads one part ahead: a stream that ends within one part is a single PUT, otherwise multipart. */
  private async putParts(key: string, parts: AsyncGenerator<Buffer>): Promise<void> {
    const first = await parts.next();
    const firstPart = first.done ? Buffer.alloc(0) : first.value;
    const second = first.done ? first : await parts.next();
    if (second.done) {
      await this.put(key, firstPart);
      return;
    }
    await this.multipart(key, async (upload) => {
      await upload(1, () => bufferBody(firstPart));
      await upload(2, () => bufferBody(second.value));
      let partNumber = 2;
      for (let next = await parts.next(); !next.done; next = await parts.next()) {
        partNumber += 1;
        if (partNumber > MAX_PARTS) {
          throw new ObjectStoreError(
            'OBJECT_STORE_UNAVAILABLE',
            `object store ${this.where}: put key ${JSON.stringify(key)}: stream is longer than ${MAX_PARTS} parts of ${this.partSize} bytes`,
            {
              details: { store: this.url, key },
            },
          );
        }
        const part = next.value;
        await upload(partNumber, () => bufferBody(part));
      }
    });
  }

  async putFile(key: string, filePath: string): Promise<void> {
    const objectKey = this.objectKey(key);
    // Errors about the source file are the caller's (its own ENOENT), not the store's.
    const { size } = await fs.stat(filePath);
    if (size <= this.partSize) {
      await this.retryStreamed('put', key, () =>
        this.client.send(
          new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: createReadStream(filePath), ContentLength: size }),
        ),
      );
      return;
    }
    // Grow the parts if the file would need more than S3's 10 000; round to whole MiB.
    const partSize = Math.max(this.partSize, Math.ceil(size / MAX_PARTS / MiB) * MiB);
    const count = Math.ceil(size / partSize);
    await this.multipart(key, async (upload) => {
      let nextPart = 0;
      let failed = false;
      const worker = async (): Promise<void> => {
        while (nextPart < count && !failed) {
          const index = nextPart++;
          const start = index * partSize;
          const length = Math.min(partSize, size - start);
          try {
            await upload(index + 1, () => ({ body: createReadStream(filePath, { start, end: start + length - 1 }), length }));
          } catch (error) {
            failed = true; // the other workers finish their part and stop, then the upload is aborted
            throw error;
          }
        }
      };
      const results = await Promise.allSettled(Array.from({ length: Math.min(this.partConcurrency, count) }, worker));
      const rejected = results.find((result): result is PromiseRejectedResult => result.status === 'rejected');
      if (rejected !== undefined) throw rejected.reason;
    });
  }

  async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    const objectKey = this.objectKey(key);
    return this.retryBody('get', key, async () => {
      const output = await this.getObject(key, objectKey);
      if (options.shared && output.ContentLength !== undefined) {
        const length = output.ContentLength;
        return readBody(output, () =>
          readIntoSharedMemory(bodyStream(output), length, sharedAllocator(options.shared as true | SharedAllocator)),
        );
      }
      const body = await readBody(output, () => bodyStream(output).transformToByteArray());
      return options.shared
        ? inSharedMemory(body, sharedAllocator(options.shared))
        : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    });
  }

  async getStream(key: string): Promise<Readable> {
    const output = await this.getObject(key, this.objectKey(key));
    return bodyStream(output);
  }

  async getToFile(key: string, filePath: string): Promise<void> {
    const objectKey = this.objectKey(key);
    await fs.mkdir(path.dirname(filePath), { recursive: true });
    await this.retryBody('get', key, async () => {
      const temp = tempName(filePath);
      try {
        const output = await this.getObject(key, objectKey);
        await readBody(output, () => pipeline(bodyStream(output), createWriteStream(temp, { flags: 'wx' })));
        const { size } = await fs.stat(temp);
        if (output.ContentLength !== undefined && size !== output.ContentLength) {
          throw new BodyError(new Error(`body ended after ${size} of ${output.ContentLength} bytes`));
        }
        const handle = await fs.open(temp, 'r+');
        try {
          await handle.sync();
        } finally {
          await handle.close();
        }
        await fs.rename(temp, filePath);
      } catch (error) {
        await fs.rm(temp, { force: true });
        throw error;
      }
    });
    await fsyncDir(path.dirname(filePath));
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const objectKey = this.objectKey(key);
    try {
      const output = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }));
      return { key, size: output.ContentLength ?? 0, ...(output.LastModified ? { lastModified: output.LastModified } : {}) };
    } catch (error) {
      const failure = this.failure(error, 'head', key);
      if (failure.code === 'OBJECT_NOT_FOUND') return undefined;
      throw failure;
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertObjectPrefix(prefix, this.url);
    let continuationToken: string | undefined;
    let previous: string | undefined;
    do {
      const output = await this.send('list', prefix, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.keyPrefix + prefix,
            MaxKeys: this.listPageSize,
            ...(continuationToken === undefined ? {} : { ContinuationToken: continuationToken }),
          }),
        ),
      );
      for (const object of output.Contents ?? []) {
        if (object.Key === undefined || !object.Key.startsWith(this.keyPrefix)) continue;
        const key = object.Key.slice(this.keyPrefix.length);
        // Folder markers ('a/') and other keys this interface cannot address are not objects here.
        if (!isValidObjectKey(key)) continue;
        // Pagination continues after the last key of a page: an unordered server would skip keys.
        if (previous !== undefined && compareKeys(previous, key) >= 0) {
          throw new ObjectStoreError(
            'OBJECT_STORE_UNAVAILABLE',
            `object store ${this.where}: list ${JSON.stringify(prefix)}: server returned ${JSON.stringify(key)} after ${JSON.stringify(previous)}, not in key order`,
            {
              details: { store: this.url, key: prefix, operation: 'list' },
            },
          );
        }
        previous = key;
        yield { key, size: object.Size ?? 0, ...(object.LastModified ? { lastModified: object.LastModified } : {}) };
      }
      continuationToken = output.IsTruncated ? output.NextContinuationToken : undefined;
      if (output.IsTruncated && continuationToken === undefined) {
        throw new ObjectStoreError(
          'OBJECT_STORE_UNAVAILABLE',
          `object store ${this.where}: list ${JSON.stringify(prefix)}: truncated page without a continuation token`,
          {
            details: { store: this.url, key: prefix, operation: 'list' },
          },
        );
      }
    } while (continuationToken !== undefined);
  }

  async delete(keys: readonly string[]): Promise<void> {
    const objectKeys = keys.map((key) => this.objectKey(key));
    for (let start = 0; start < objectKeys.length; start += DELETE_BATCH) {
      const batch = objectKeys.slice(start, start + DELETE_BATCH);
      const output = await this.send('delete', keys[start], () =>
        this.client.send(
          new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
        ),
      );
      // Quiet mode lists only failures; a missing key is not one (S3 deletes are idempotent).
      const failed = (output.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
      const first = failed[0];
      if (first !== undefined) {
        const key = (first.Key ?? '').slice(this.keyPrefix.length);
        const cause = Object.assign(new Error(`${first.Code ?? 'Error'}: ${first.Message ?? ''}`), { name: first.Code ?? 'Error' });
        const failure = this.failure(cause, 'delete', key);
        throw new ObjectStoreError(failure.code, `${failure.message} (${failed.length} of ${batch.length} keys in the batch failed)`, {
          details: { ...failure.details, failedKeys: failed.length },
          cause,
        });
      }
    }
  }

  async verify(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (error) {
      const failure = this.failure(error, 'verify', undefined);
      // HeadBucket answers a missing bucket with a bare 404.
      if (failure.code === 'OBJECT_NOT_FOUND') {
        throw new ObjectStoreError(
          'OBJECT_STORE_BUCKET_MISSING',
          `object store ${this.where}: bucket ${JSON.stringify(this.bucket)} does not exist`,
          {
            details: failure.details,
            cause: error,
          },
        );
      }
      throw failure;
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private objectKey(key: string): string {
    return this.keyPrefix + assertObjectKey(key, this.url);
  }

  private async getObject(key: string, objectKey: string): Promise<GetObjectCommandOutput> {
    return this.send('get', key, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: objectKey })));
  }

  /** One SDK call (retried inside the SDK), its error mapped. */
  private async send<T>(operation: string, key: string | undefined, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw this.failure(error, operation, key);
    }
  }

  /** A call with a streamed body, which the SDK does not retry: retried here, reopening the body. */
  private async retryStreamed<T>(operation: string, key: string, call: () => Promise<T>): Promise<T> {
    return this.withRetries(operation, key, call, (error) => isTransient(error));
  }

  /** A download: the SDK retried the request; retried here when the body breaks off. */
  private async retryBody<T>(operation: string, key: string, call: () => Promise<T>): Promise<T> {
    try {
      return await this.withRetries(operation, key, call, (error) => error instanceof BodyError && isTransient(error.cause));
    } catch (error) {
      throw this.failure(error instanceof BodyError ? error.cause : error, operation, key);
    }
  }

  private async withRetries<T>(operation: string, key: string, call: () => Promise<T>, retryable: (error: unknown) => boolean): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        if (attempt >= this.maxAttempts || !retryable(error)) {
          throw error instanceof ObjectStoreError || error instanceof BodyError ? error : this.failure(error, operation, key, attempt);
        }
        const delay = backoff(attempt);
        this.logger?.warn(
          { store: this.url, key, operation, attempt, delayMs: delay, err: error },
          'object store request failed, retrying',
        );
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /**
   * CreateMultipartUpload, the parts `uploadParts` sends through `upload`, then
   * CompleteMultipartUpload; on any failure AbortMultipartUpload, so no parts are left to bill.
   */
  private async multipart(
    key: string,
    uploadParts: (upload: (partNumber: number, open: () => { body: Readable | Buffer; length: number }) => Promise<void>) => Promise<void>,
  ): Promise<void> {
    const objectKey = this.objectKey(key);
    const created = await this.send('put', key, () =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey })),
    );
    const uploadId = created.UploadId;
    if (uploadId === undefined) {
      throw new ObjectStoreError(
        'OBJECT_STORE_UNAVAILABLE',
        `object store ${this.where}: put key ${JSON.stringify(key)}: CreateMultipartUpload returned no UploadId`,
        {
          details: { store: this.url, key },
        },
      );
    }
    const parts: CompletedPart[] = [];
    try {
      await uploadParts(async (partNumber, open) => {
        // A buffered part is retried inside the SDK; a streamed one here, reopening its stream.
        let streamed = false;
        const output = await this.withRetries(
          'put',
          key,
          () => {
            const { body, length } = open();
            streamed = body instanceof Readable;
            return this.client.send(
              new UploadPartCommand({
                Bucket: this.bucket,
                Key: objectKey,
                UploadId: uploadId,
                PartNumber: partNumber,
                Body: body,
                ContentLength: length,
              }),
            );
          },
          (error) => streamed && isTransient(error),
        );
        parts.push({ PartNumber: partNumber, ETag: output.ETag });
      });
      parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      await this.send('put', key, () =>
        this.client.send(
          new CompleteMultipartUploadCommand({
            Bucket: this.bucket,
            Key: objectKey,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
          }),
        ),
      );
    } catch (error) {
      try {
        await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }));
      } catch (abortError) {
        // A bucket lifecycle rule (AbortIncompleteMultipartUpload) is the safety net for this.
        this.logger?.warn({ store: this.url, key, uploadId, err: abortError }, 'could not abort multipart upload');
      }
      throw error instanceof ObjectStoreError ? error : this.failure(error, 'put', key);
    }
  }

  private failure(error: unknown, operation: string, key: string | undefined, attempts?: number): ObjectStoreError {
    if (error instanceof ObjectStoreError) return error;
    const { name, status } = describeSdkError(error);
    const code = classify(error);
    const what = key === undefined ? '' : ` key ${JSON.stringify(key)}`;
    const tried = attempts ?? sdkAttempts(error);
    const reason =
      code === 'OBJECT_NOT_FOUND'
        ? 'no such object'
        : code === 'OBJECT_STORE_BUCKET_MISSING'
          ? `bucket ${JSON.stringify(this.bucket)} does not exist`
          : code === 'OBJECT_STORE_ACCESS_DENIED'
            ? `access denied, check the credentials and their permissions (${name}${status === undefined ? '' : ` ${status}`}: ${errorMessage(error)})`
            : `${name}${status === undefined ? '' : ` ${status}`}: ${errorMessage(error)}${tried !== undefined && tried > 1 ? ` (after ${tried} attempts)` : ''}`;
    return new ObjectStoreError(code, `object store ${this.where}: ${operation}${what} failed: ${reason}`, {
      details: {
        store: this.url,
        ...(key === undefined ? {} : { key }),
        operation,
        s3Code: name,
        ...(status === undefined ? {} : { httpStatus: status }),
        ...(tried === undefined ? {} : { attempts: tried }),
      },
      cause: error,
    });
  }
}

/** Marks an error that happened while reading a response body, after the SDK's own retries. */
class BodyError extends Error {
  override readonly cause: unknown;
  constructor(cause: unknown) {
    super(errorMessage(cause));
    this.name = 'BodyError';
    this.cause = cause;
  }
}

async function readBody<T>(output: GetObjectCommandOutput, read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (output.Body instanceof Readable) output.Body.destroy();
    throw new BodyError(error);
  }
}

/** In Node the SDK's body is an http.IncomingMessage with `transformTo...` helpers mixed in. */
function bodyStream(output: GetObjectCommandOutput): Readable & NonNullable<GetObjectCommandOutput['Body']> {
  const body = output.Body;
  if (body instanceof Readable) return body;
  throw new Error('GetObject returned no readable body');
}

function bufferBody(buffer: Buffer): { body: Buffer; length: number } {
  return { body: buffer, length: buffer.byteLength };
}

/** A body of `length` bytes, copied chunk by chunk into a SharedArrayBuffer of that size. */
async function readIntoSharedMemory(stream: Readable, length: number, allocate: SharedAllocator): Promise<Buffer> {
  const bytes = allocate(length);
  let filled = 0;
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    const data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    if (filled + data.byteLength > length) throw new Error(`body longer than its ${length} bytes`);
    bytes.set(data, filled);
    filled += data.byteLength;
  }
  if (filled !== length) throw new Error(`body ended after ${filled} of ${length} bytes`);
  return bytes;
}

/** Splits a stream into buffers of exactly `size` bytes (the last one shorter). */
async function* chunks(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    let data = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    while (pendingBytes + data.byteLength >= size) {
      const take = size - pendingBytes;
      pending.push(data.subarray(0, take));
      yield Buffer.concat(pending, size);
      data = data.subarray(take);
      pending = [];
      pendingBytes = 0;
    }
    if (data.byteLength > 0) {
      pending.push(data);
      pendingBytes += data.byteLength;
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
}

interface SdkErrorShape {
  name?: unknown;
  Code?: unknown;
  code?: unknown;
  $retryable?: unknown;
  $metadata?: { httpStatusCode?: unknown; attempts?: unknown };
}

function describeSdkError(error: unknown): { name: string; status: number | undefined } {
  const shape = (typeof error === 'object' && error !== null ? error : {}) as SdkErrorShape;
  const name = typeof shape.Code === 'string' ? shape.Code : typeof shape.name === 'string' ? shape.name : 'Error';
  const status = typeof shape.$metadata?.httpStatusCode === 'number' ? shape.$metadata.httpStatusCode : undefined;
  return { name, status };
}

function sdkAttempts(error: unknown): number | undefined {
  const shape = (typeof error === 'object' && error !== null ? error : {}) as SdkErrorShape;
  return typeof shape.$metadata?.attempts === 'number' ? shape.$metadata.attempts : undefined;
}

const ACCESS_DENIED_NAMES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'Forbidden',
  'ExpiredToken',
  'InvalidToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'CredentialsProviderError',
]);
const NOT_FOUND_NAMES = new Set(['NoSuchKey', 'NotFound']);
const TRANSIENT_NAMES = new Set([
  'InternalError',
  'ServiceUnavailable',
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestThrottled',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'TooManyRequestsException',
]);
const TRANSIENT_SYSTEM_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

function classify(error: unknown): ObjectStoreErrorCode {
  const { name, status } = describeSdkError(error);
  if (name === 'NoSuchBucket') return 'OBJECT_STORE_BUCKET_MISSING';
  if (ACCESS_DENIED_NAMES.has(name) || status === 403) return 'OBJECT_STORE_ACCESS_DENIED';
  if (NOT_FOUND_NAMES.has(name) || status === 404) return 'OBJECT_NOT_FOUND';
  return 'OBJECT_STORE_UNAVAILABLE';
}

/** 5xx, throttling, timeouts and network errors: worth another attempt. */
function isTransient(error: unknown): boolean {
  if (error instanceof ObjectStoreError) return false;
  const { name, status } = describeSdkError(error);
  if (classify(error) !== 'OBJECT_STORE_UNAVAILABLE') return false;
  const shape = (typeof error === 'object' && error !== null ? error : {}) as SdkErrorShape;
  if (shape.$retryable !== undefined && shape.$retryable !== null && shape.$retryable !== false) return true;
  if (status !== undefined && (status >= 500 || status === 429 || status === 408)) return true;
  if (TRANSIENT_NAMES.has(name)) return true;
  const system = systemErrorCode(error);
  if (system !== undefined && TRANSIENT_SYSTEM_CODES.has(system)) return true;
  // Node's http client: 'socket hang up', 'aborted' (a response cut short).
  return /socket hang up|aborted|premature close/i.test(errorMessage(error));
}

/** Exponential backoff with full jitter, as the SDK's standard retry strategy does. */
function backoff(attempt: number): number {
  return Math.floor(Math.random() * Math.min(RETRY_MAX_DELAY_MS, RETRY_BASE_DELAY_MS * 2 ** attempt));
}

function positiveInteger(value: number, name: string, url: string): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ObjectStoreError('OBJECT_STORE_URL_INVALID', `object store ${url}: ${name} must be a positive integer, got ${value}`);
  }
  return value;
}

/**
 * The SDK logs every request at info level; only its warnings and errors are worth keeping. (It
 * prints to the console when given no logger.)
 */
function sdkLogger(logger: Logger | undefined): NonNullable<S3ClientConfig['logger']> {
  const ignore = (): void => undefined;
  return {
    trace: ignore,
    debug: ignore,
    info: ignore,
    warn: (...content: unknown[]) => logger?.warn({ sdk: content }, 'aws-sdk warning'),
    error: (...content: unknown[]) => logger?.error({ sdk: content }, 'aws-sdk error'),
  };
}

/**
 * DeleteObjects must carry a checksum. The SDK now sends a CRC32 header only, which older MinIO
 * and Ceph releases reject ("Missing required header for this request: Content-Md5"); adding
 * Content-MD5 as well satisfies every server.
 */
function addDeleteObjectsContentMd5(client: S3Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const request = args.request as { headers?: Record<string, string>; body?: unknown } | undefined;
      if (context.commandName === 'DeleteObjectsCommand' && request?.headers !== undefined) {
        const body = request.body;
        if (typeof body === 'string' || body instanceof Uint8Array) {
          request.headers['content-md5'] = createHash('md5').update(body).digest('base64');
        }
      }
      return next(args);
    },
    { step: 'build', name: 'litebaseDeleteObjectsContentMd5' },
  );
}
