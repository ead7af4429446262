import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream, existsSync, mkdtempSync, promises as fs, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LitebaseError } from '../../../src/errors.js';
import {
  ObjectStoreError,
  type ObjectInfo,
  type ObjectStore,
  type ObjectStoreErrorCode,
  type ObjectStoreOptions,
} from '../../../src/storage/object-store.js';
import { openObjectStore } from '../../../src/storage/open-object-store.js';
import { S3rver } from '../../support/s3rver.js';

const MiB = 1024 * 1024;
const BUCKET = 'litebase-test';

let work: string;
let s3rver: S3rver;
let storeCount = 0;

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'litebase-object-store-'));
  s3rver = await S3rver.start({ buckets: [BUCKET] });
});

afterAll(async () => {
  await s3rver?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** Each test gets a store of its own: a fresh folder, or a fresh prefix in the s3rver bucket. */
const backends = [
  {
    name: 'file',
    open: (options: ObjectStoreOptions = {}): ObjectStore =>
      openObjectStore(pathToFileURL(path.join(work, `store-${++storeCount}`)).href, options),
  },
  {
    name: 's3rver',
    open: (options: ObjectStoreOptions = {}): ObjectStore =>
      openObjectStore(`s3://${BUCKET}/run/store-${++storeCount}`, { ...s3rver.storeOptions, ...options }),
  },
] as const;

async function collect(iterable: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of iterable) out.push(info);
  return out;
}

async function expectCode(promise: Promise<unknown>, code: ObjectStoreErrorCode): Promise<ObjectStoreError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected ${code}`).toBeInstanceOf(ObjectStoreError);
  expect((error as ObjectStoreError).code).toBe(code);
  return error as ObjectStoreError;
}

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function sha256Stream(stream: Readable): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** A file of random bytes, written 1 MiB at a time. */
async function randomFile(name: string, size: number): Promise<{ file: string; sha: string }> {
  const file = path.join(work, name);
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  for (let written = 0; written < size; written += MiB) {
    const chunk = randomBytes(Math.min(MiB, size - written));
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
  return { file, sha: hash.digest('hex') };
}

const INVALID_KEYS = ['', '/abs', '..', 'a/../b', 'a/./b', 'a//b', 'a/', 'a\\b', '.hidden', 'a/.tmp-x', 'a\u0000b', 'x'.repeat(1025)];

describe.each(backends)('object store contract: $name', (backend) => {
  it('puts, gets and heads objects; a missing key is OBJECT_NOT_FOUND', async () => {
    const store = backend.open();
    try {
      await store.put('databases/app/1/checkpoints/0001.ckpt', Buffer.from('hello'));
      await store.put('empty', new Uint8Array(0));
      await store.put('from-stream', Readable.from([Buffer.from('str'), Buffer.from('eam')]));
      expect((await store.get('databases/app/1/checkpoints/0001.ckpt')).toString()).toBe('hello');
      expect((await store.get('empty')).length).toBe(0);
      expect((await store.get('from-stream')).toString()).toBe('stream');

      await store.put('databases/app/1/checkpoints/0001.ckpt', Buffer.from('replaced'));
      expect((await store.get('databases/app/1/checkpoints/0001.ckpt')).toString()).toBe('replaced');

      const info = await store.head('databases/app/1/checkpoints/0001.ckpt');
      expect(info?.key).toBe('databases/app/1/checkpoints/0001.ckpt');
      expect(info?.size).toBe(8);
      expect(info?.lastModified).toBeInstanceOf(Date);
      expect(await store.head('missing/key')).toBeUndefined();
      // A folder is not an object (the file store keeps 'databases' as a folder).
      expect(await store.head('databases')).toBeUndefined();

      const notFound = await expectCode(store.get('missing/key'), 'OBJECT_NOT_FOUND');
      expect(notFound).toBeInstanceOf(LitebaseError);
      expect(notFound.status).toBe(404);
      expect(notFound.message).toContain(store.url);
      expect(notFound.message).toContain('missing/key');
      await expectCode(store.getStream('missing/key'), 'OBJECT_NOT_FOUND');
      const target = path.join(work, `missing-${backend.name}`, 'out.bin');
      await expectCode(store.getToFile('missing/key', target), 'OBJECT_NOT_FOUND');
      expect(existsSync(target)).toBe(false);
      expect(await fs.readdir(path.dirname(target))).toEqual([]); // no temp file left behind

      const stream = await store.getStream('from-stream');
      expect(await sha256Stream(stream)).toBe(sha256(Buffer.from('stream')));
      await store.verify();
    } finally {
      await store.close();
    }
  });

  it('lists keys under a prefix in byte order, with sizes', async () => {
    const store = backend.open();
    try {
      const keys = ['seg/0010', 'seg/0002', 'seg/0001', 'z', 'a', 'ckpt/0005'];
      for (const key of keys) await store.put(key, Buffer.from(key));
      const all = await collect(store.list(''));
      expect(all.map((o) => o.key)).toEqual(['a', 'ckpt/0005', 'seg/0001', 'seg/0002', 'seg/0010', 'z']);
      expect(all.map((o) => o.size)).toEqual([1, 9, 8, 8, 8, 1]);
      expect((await collect(store.list('seg/'))).map((o) => o.key)).toEqual(['seg/0001', 'seg/0002', 'seg/0010']);
      expect((await collect(store.list('seg/000'))).map((o) => o.key)).toEqual(['seg/0001', 'seg/0002']);
      expect(await collect(store.list('nothing/'))).toEqual([]);

      // Two stores with different prefixes (folders) do not see each other's keys.
      const other = backend.open();
      await other.put('a', Buffer.from('other'));
      expect((await collect(other.list(''))).map((o) => o.key)).toEqual(['a']);
      expect((await store.get('a')).toString()).toBe('a');
      await other.close();
    } finally {
      await store.close();
    }
  });

  // s3rver walks its folders depth first, so it lists 'seg/0001' before 'seg-x' although '-' (0x2d)
  // sorts before '/' (0x2f); the S3 store refuses a listing out of order rather than return it.
  // AWS S3, MinIO, R2 and Ceph list in true byte order. Litebase's own keys never hit this case.
  it.skipIf(backend.name === 's3rver')('orders a key before a folder of the same stem by bytes', async () => {
    const store = backend.open();
    try {
      for (const key of ['seg/0001', 'seg-x', 'seg0']) await store.put(key, Buffer.from(key));
      expect((await collect(store.list('seg'))).map((o) => o.key)).toEqual(['seg-x', 'seg/0001', 'seg0']);
    } finally {
      await store.close();
    }
  });

  it('lists more than 1000 keys across pages, then deletes them in batches', async () => {
    const store = backend.open();
    try {
      const keys = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(5, '0')}.seg`);
      for (let i = 0; i < keys.length; i += 50) {
        await Promise.all(keys.slice(i, i + 50).map((key) => store.put(key, Buffer.from('x'))));
      }
      expect((await collect(store.list('many/'))).map((o) => o.key)).toEqual(keys);
      // The same objects seen through small pages (ListObjectsV2 MaxKeys=100: 11 pages).
      const small = backend.name === 's3rver' ? openObjectStore(store.url, { ...s3rver.storeOptions, listPageSize: 100 }) : store;
      expect((await collect(small.list('many/0'))).map((o) => o.key)).toEqual(keys);
      if (small !== store) await small.close();

      // 1100 keys plus absent ones: two DeleteObjects calls on S3; absent keys are fine.
      await store.delete([...keys, 'many/absent', 'never/was']);
      expect(await collect(store.list(''))).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('deletes some keys and keeps the others', async () => {
    const store = backend.open();
    try {
      for (const key of ['d/1', 'd/2', 'd/3', 'e/1']) await store.put(key, Buffer.from(key));
      await store.delete(['d/1', 'd/3', 'e/1', 'd/missing']);
      await store.delete([]);
      expect((await collect(store.list(''))).map((o) => o.key)).toEqual(['d/2']);
      expect(await store.head('d/1')).toBeUndefined();
      // A deleted key can be written again (the file store removed its emptied folder 'e').
      await store.put('e/1', Buffer.from('again'));
      expect((await store.get('e/1')).toString()).toBe('again');
    } finally {
      await store.close();
    }
  });

  it('uploads a 40 MiB file in 5 MiB parts and downloads it byte for byte', async () => {
    // On S3, a pass-through proxy counts the requests, to prove the upload went in parts.
    const proxy = backend.name === 's3rver' ? await FaultyProxy.start(s3rver.endpoint, () => 'pass') : undefined;
    const store = backend.open({ partSize: 5 * MiB, ...(proxy ? { endpoint: proxy.endpoint } : {}) });
    try {
      const { file, sha } = await randomFile(`big-${backend.name}.bin`, 40 * MiB + 12345);
      await store.putFile('databases/app/1/checkpoints/big.ckpt', file);
      expect((await store.head('databases/app/1/checkpoints/big.ckpt'))?.size).toBe(40 * MiB + 12345);
      if (proxy) {
        const parts = proxy.seen.filter((kind) => kind.startsWith('PUT part'));
        expect(parts.sort()).toEqual(Array.from({ length: 9 }, (_, i) => `PUT part${i + 1}`).sort());
        expect(proxy.seen.filter((kind) => kind === 'POST create' || kind === 'POST upload')).toEqual(['POST create', 'POST upload']);
      }

      const target = path.join(work, `download-${backend.name}`, 'nested', 'big.ckpt');
      await store.getToFile('databases/app/1/checkpoints/big.ckpt', target);
      expect(await sha256File(target)).toBe(sha);
      expect(await sha256Stream(await store.getStream('databases/app/1/checkpoints/big.ckpt'))).toBe(sha);
      expect(await fs.readdir(path.dirname(target))).toEqual(['big.ckpt']); // no temp file left behind
      await fs.rm(file);
    } finally {
      await store.close();
      await proxy?.stop();
    }
  });

  it('puts a stream longer than one part and a small file', async () => {
    const store = backend.open({ partSize: 5 * MiB });
    try {
      const data = randomBytes(12 * MiB + 7);
      // Odd-sized chunks, so parts are cut across chunk boundaries.
      const chunks = Array.from({ length: Math.ceil(data.length / 333_333) }, (_, i) => data.subarray(i * 333_333, (i + 1) * 333_333));
      await store.put('streamed', Readable.from(chunks));
      expect(sha256(await store.get('streamed'))).toBe(sha256(data));
      // Into shared memory (what a restore's page-writing threads decode from): the same bytes.
      const shared = await store.get('streamed', { shared: true });
      expect(shared.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(shared.buffer.byteLength).toBe(data.length);
      expect(sha256(shared)).toBe(sha256(data));
      expect(await store.get('empty-shared', { shared: true }).catch((error: unknown) => error)).toMatchObject({
        code: 'OBJECT_NOT_FOUND',
      });

      const small = path.join(work, `small-${backend.name}.bin`);
      writeFileSync(small, 'small file');
      await store.putFile('small', small);
      expect((await store.get('small')).toString()).toBe('small file');
      await expect(store.putFile('absent', path.join(work, 'no-such-file'))).rejects.toMatchObject({ code: 'ENOENT' });
    } finally {
      await store.close();
    }
  });

  it('refuses invalid keys with OBJECT_KEY_INVALID', async () => {
    const store = backend.open();
    try {
      const file = path.join(work, `key-${backend.name}.bin`);
      writeFileSync(file, 'x');
      for (const key of INVALID_KEYS) {
        await expectCode(store.put(key, Buffer.from('x')), 'OBJECT_KEY_INVALID');
        await expectCode(store.putFile(key, file), 'OBJECT_KEY_INVALID');
        await expectCode(store.get(key), 'OBJECT_KEY_INVALID');
        await expectCode(store.getStream(key), 'OBJECT_KEY_INVALID');
        await expectCode(store.getToFile(key, path.join(work, 'never')), 'OBJECT_KEY_INVALID');
        await expectCode(store.head(key), 'OBJECT_KEY_INVALID');
        await expectCode(store.delete(['fine', key]), 'OBJECT_KEY_INVALID');
      }
      for (const prefix of ['/', '../', 'a/../', 'a//', '\\']) {
        await expectCode(collect(store.list(prefix)), 'OBJECT_KEY_INVALID');
      }
      // Nothing reached the store.
      expect(await collect(store.list(''))).toEqual([]);
      expect(existsSync(path.join(work, 'never'))).toBe(false);
    } finally {
      await store.close();
    }
  });
});

describe('openObjectStore', () => {
  it('refuses URLs it cannot use', () => {
    for (const url of [
      '',
      'http://bucket/x',
      'file:relative/path',
      'file://host/abs',
      's3://',
      's3:///prefix',
      's3://b',
      's3://bucket/a/../b',
      's3://bucket/a//b',
    ]) {
      expect(() => openObjectStore(url), url).toThrow(expect.objectContaining({ code: 'OBJECT_STORE_URL_INVALID' }) as Error);
    }
    expect(() => openObjectStore('s3://bucket', { accessKeyId: 'only-the-id' })).toThrow(
      expect.objectContaining({ code: 'OBJECT_STORE_URL_INVALID' }) as Error,
    );
    expect(() => openObjectStore('s3://bucket', { partSize: MiB })).toThrow(
      expect.objectContaining({ code: 'OBJECT_STORE_URL_INVALID' }) as Error,
    );
  });

  it('names the store without secrets', async () => {
    const s3 = openObjectStore('s3://bucket/some/prefix/', {
      endpoint: 'http://127.0.0.1:1',
      accessKeyId: 'AKID',
      secretAccessKey: 'very-secret',
      maxAttempts: 2,
    });
    expect(s3.url).toBe('s3://bucket/some/prefix');
    const error = await expectCode(s3.get('k'), 'OBJECT_STORE_UNAVAILABLE');
    expect(error.message).toContain('s3://bucket/some/prefix');
    expect(error.message).not.toContain('very-secret');
    expect(JSON.stringify(error.details)).not.toContain('very-secret');
    await s3.close();
    const file = openObjectStore('file:///var/lib/litebase/archive/');
    expect(file.url).toBe('file:///var/lib/litebase/archive');
  }, 20_000);

  it('file store: creates its folder on first write; a file in its place is BUCKET_MISSING', async () => {
    const root = path.join(work, 'fresh', 'archive');
    const store = openObjectStore(pathToFileURL(root).href);
    await store.put('k', Buffer.from('v'));
    expect((await store.get('k')).toString()).toBe('v');
    await store.verify();
    const notAFolder = path.join(work, 'not-a-folder');
    writeFileSync(notAFolder, '');
    await expectCode(openObjectStore(pathToFileURL(notAFolder).href).verify(), 'OBJECT_STORE_BUCKET_MISSING');
  });
});

describe('S3 store errors against s3rver', () => {
  it('a missing bucket is OBJECT_STORE_BUCKET_MISSING', async () => {
    const store = openObjectStore('s3://no-such-bucket/prefix', s3rver.storeOptions);
    try {
      const error = await expectCode(store.verify(), 'OBJECT_STORE_BUCKET_MISSING');
      expect(error.message).toContain('no-such-bucket');
      await expectCode(store.put('k', Buffer.from('v')), 'OBJECT_STORE_BUCKET_MISSING');
      await expectCode(store.get('k'), 'OBJECT_STORE_BUCKET_MISSING');
      await expectCode(collect(store.list('')), 'OBJECT_STORE_BUCKET_MISSING');
    } finally {
      await store.close();
    }
  });

  // s3rver rejects an access key id it does not know (InvalidAccessKeyId) but does not check V4
  // signatures, so a wrong secret passes there; the fake server below proves that mapping.
  it('an unknown access key id is OBJECT_STORE_ACCESS_DENIED', async () => {
    const store = openObjectStore(`s3://${BUCKET}/denied`, {
      ...s3rver.storeOptions,
      accessKeyId: 'WRONG',
      secretAccessKey: 'secret-value',
    });
    try {
      const error = await expectCode(store.verify(), 'OBJECT_STORE_ACCESS_DENIED');
      expect(error.message).not.toContain('secret-value');
      const put = await expectCode(store.put('k', Buffer.from('v')), 'OBJECT_STORE_ACCESS_DENIED');
      expect(put.details).toMatchObject({ s3Code: 'InvalidAccessKeyId', httpStatus: 403, key: 'k' });
      await expectCode(store.get('k'), 'OBJECT_STORE_ACCESS_DENIED');
    } finally {
      await store.close();
    }
  });
});

/** A tiny HTTP server that answers what `handler` says and counts requests. */
class FakeServer {
  readonly requests: { method: string; url: string }[] = [];
  private constructor(private readonly server: Server) {}

  static async start(handler: (req: IncomingMessage, res: ServerResponse, count: number) => void): Promise<FakeServer> {
    let fake: FakeServer | undefined;
    const server = createServer((req, res) => {
      fake?.requests.push({ method: req.method ?? '', url: req.url ?? '' });
      handler(req, res, fake?.requests.length ?? 0);
    });
    fake = new FakeServer(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return fake;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

function s3Error(res: ServerResponse, status: number, code: string, message: string): void {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>fake</RequestId></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Answers after reading the request body, as S3 does. */
function afterBody(req: IncomingMessage, answer: () => void): void {
  req.resume();
  req.on('end', answer);
}

const fakeOptions = (endpoint: string): ObjectStoreOptions => ({
  endpoint,
  region: 'us-east-1',
  accessKeyId: 'AKIDFAKE',
  secretAccessKey: 'fake-secret',
  maxAttempts: 3,
});

describe('S3 store against a fake server', () => {
  it('maps AccessDenied and SignatureDoesNotMatch to OBJECT_STORE_ACCESS_DENIED', async () => {
    const fake = await FakeServer.start((req, res) =>
      afterBody(req, () => {
        if (req.method === 'HEAD') {
          res.writeHead(403).end(); // HEAD errors have no body
        } else if (req.method === 'PUT') {
          s3Error(res, 403, 'SignatureDoesNotMatch', 'The request signature we calculated does not match the signature you provided.');
        } else {
          s3Error(res, 403, 'AccessDenied', 'Access Denied');
        }
      }),
    );
    const store = openObjectStore('s3://bucket/p', fakeOptions(fake.endpoint));
    try {
      const get = await expectCode(store.get('k'), 'OBJECT_STORE_ACCESS_DENIED');
      expect(get.details).toMatchObject({ s3Code: 'AccessDenied', httpStatus: 403 });
      expect(get.message).toContain('s3://bucket/p');
      expect(get.message).not.toContain('fake-secret');
      const put = await expectCode(store.put('k', Buffer.from('v')), 'OBJECT_STORE_ACCESS_DENIED');
      expect(put.details).toMatchObject({ s3Code: 'SignatureDoesNotMatch' });
      await expectCode(store.head('k'), 'OBJECT_STORE_ACCESS_DENIED');
      await expectCode(store.verify(), 'OBJECT_STORE_ACCESS_DENIED');
      // 403 is not transient: one request each, no retries.
      expect(fake.requests.length).toBe(4);
    } finally {
      await store.close();
      await fake.stop();
    }
  });

  it('sends DeleteObjects with Content-MD5 and reports keys the server refused', async () => {
    const md5s: { header: string | undefined; actual: string }[] = [];
    const fake = await FakeServer.start((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        md5s.push({ header: req.headers['content-md5'] as string | undefined, actual: createHash('md5').update(body).digest('base64') });
        const refused = body.toString().includes('<Key>p/k2</Key>');
        const xml = `<?xml version="1.0" encoding="UTF-8"?>\n<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${
          refused ? '<Error><Key>p/k2</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>' : ''
        }</DeleteResult>`;
        res.writeHead(200, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) });
        res.end(xml);
      });
    });
    const store = openObjectStore('s3://bucket/p', fakeOptions(fake.endpoint));
    try {
      await store.delete(['k1']);
      const error = await expectCode(store.delete(['k1', 'k2']), 'OBJECT_STORE_ACCESS_DENIED');
      expect(error.message).toContain('"k2"');
      expect(error.details).toMatchObject({ key: 'k2', failedKeys: 1 });
      expect(fake.requests.map((r) => `${r.method} ${r.url}`)).toEqual([
        expect.stringMatching(/^POST \/bucket\/?\?delete/),
        expect.stringMatching(/^POST \/bucket\/?\?delete/),
      ]);
      for (const { header, actual } of md5s) expect(header).toBe(actual);
    } finally {
      await store.close();
      await fake.stop();
    }
  });

  it('retries a 503 with backoff, then succeeds', async () => {
    const fake = await FakeServer.start((req, res, count) =>
      afterBody(req, () => {
        if (count === 1) return s3Error(res, 503, 'SlowDown', 'Please reduce your request rate.');
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': 5,
          etag: '"x"',
          'last-modified': new Date().toUTCString(),
        });
        res.end('hello');
      }),
    );
    const store = openObjectStore('s3://bucket', fakeOptions(fake.endpoint));
    try {
      expect((await store.get('k')).toString()).toBe('hello');
      expect(fake.requests.map((r) => `${r.method} ${r.url.split('?')[0]}`)).toEqual(['GET /bucket/k', 'GET /bucket/k']);
    } finally {
      await store.close();
      await fake.stop();
    }
  });

  it('gives up after maxAttempts with OBJECT_STORE_UNAVAILABLE', async () => {
    const fake = await FakeServer.start((req, res) =>
      afterBody(req, () => s3Error(res, 500, 'InternalError', 'We encountered an internal error.')),
    );
    const store = openObjectStore('s3://bucket', fakeOptions(fake.endpoint));
    try {
      const error = await expectCode(store.get('k'), 'OBJECT_STORE_UNAVAILABLE');
      expect(error.status).toBe(503);
      expect(error.message).toContain('InternalError');
      expect(error.message).toContain('"k"');
      expect(fake.requests.length).toBe(3);
      // The streamed upload of a small file is retried by the store itself (the SDK cannot resend a stream).
      const file = path.join(work, 'retry-small.bin');
      writeFileSync(file, 'data');
      await expectCode(store.putFile('k', file), 'OBJECT_STORE_UNAVAILABLE');
      expect(fake.requests.length).toBe(6);
    } finally {
      await store.close();
      await fake.stop();
    }
  });

  it('a server that is not there is OBJECT_STORE_UNAVAILABLE', async () => {
    const fake = await FakeServer.start((_req, res) => res.end());
    const endpoint = fake.endpoint;
    await fake.stop(); // nothing listens there now
    const store = openObjectStore('s3://bucket', { ...fakeOptions(endpoint), maxAttempts: 2 });
    try {
      const error = await expectCode(store.verify(), 'OBJECT_STORE_UNAVAILABLE');
      expect(error.message).toContain(endpoint);
    } finally {
      await store.close();
    }
  });
});

/**
 * A proxy in front of s3rver that injects faults: `fault` sees each request and its number among
 * requests like it, and says whether to pass it, answer 503, or cut the response body short.
 */
class FaultyProxy {
  readonly seen: string[] = [];
  private readonly counts = new Map<string, number>();
  private constructor(private readonly server: Server) {}

  static async start(upstream: string, fault: (kind: string, nth: number) => 'pass' | '503' | 'cut'): Promise<FaultyProxy> {
    const target = new URL(upstream);
    let proxy: FaultyProxy | undefined;
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://x');
      const kind = `${req.method} ${url.searchParams.has('partNumber') ? `part${url.searchParams.get('partNumber')}` : url.searchParams.has('uploadId') ? 'upload' : url.searchParams.has('uploads') ? 'create' : 'object'}`;
      const nth = (proxy?.counts.get(kind) ?? 0) + 1;
      proxy?.counts.set(kind, nth);
      proxy?.seen.push(kind);
      const action = fault(kind, nth);
      if (action === '503') return afterBody(req, () => s3Error(res, 503, 'ServiceUnavailable', 'Please try again.'));
      const upstreamReq = request(
        { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
        (upstreamRes) => {
          res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
          if (action !== 'cut') return void upstreamRes.pipe(res);
          let sent = 0;
          upstreamRes.on('end', () => res.end());
          upstreamRes.on('data', (chunk: Buffer) => {
            if (sent > MiB) return;
            res.write(chunk);
            sent += chunk.length;
            if (sent > MiB) {
              upstreamRes.destroy();
              res.socket?.destroy();
            }
          });
        },
      );
      upstreamReq.on('error', () => res.socket?.destroy());
      req.pipe(upstreamReq);
    });
    proxy = new FaultyProxy(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe('S3 store retries streamed uploads and broken downloads (proxy before s3rver)', () => {
  it('retries a failed part and a cut download, and the bytes arrive intact', async () => {
    const proxy = await FaultyProxy.start(s3rver.endpoint, (kind, nth) => {
      if (kind === 'PUT part2' && nth === 1) return '503';
      if (kind === 'PUT object' && nth === 1) return '503';
      if (kind === 'GET object' && (nth === 1 || nth === 3)) return 'cut';
      return 'pass';
    });
    const store = openObjectStore(`s3://${BUCKET}/proxied`, { ...s3rver.storeOptions, endpoint: proxy.endpoint, partSize: 5 * MiB });
    try {
      const { file, sha } = await randomFile('proxied.bin', 12 * MiB);
      await store.putFile('big', file);
      expect(proxy.seen.filter((k) => k === 'PUT part2')).toHaveLength(2);

      const target = path.join(work, 'proxied-download.bin');
      await store.getToFile('big', target); // the first answer breaks off after 1 MiB
      expect(proxy.seen.filter((k) => k === 'GET object')).toHaveLength(2);
      expect(await sha256File(target)).toBe(sha);
      // Read into shared memory (a restore's bundles): the cut answer is retried too.
      const shared = await store.get('big', { shared: true });
      expect(proxy.seen.filter((k) => k === 'GET object')).toHaveLength(4);
      expect(shared.buffer).toBeInstanceOf(SharedArrayBuffer);
      expect(sha256(shared)).toBe(sha);

      const small = path.join(work, 'proxied-small.bin');
      writeFileSync(small, 'small');
      await store.putFile('small', small);
      expect(proxy.seen.filter((k) => k === 'PUT object')).toHaveLength(2);
      expect((await store.get('small')).toString()).toBe('small');
    } finally {
      await store.close();
      await proxy.stop();
    }
  });

  it('aborts the multipart upload when a part keeps failing', async () => {
    const proxy = await FaultyProxy.start(s3rver.endpoint, (kind) => (kind === 'PUT part3' ? '503' : 'pass'));
    const store = openObjectStore(`s3://${BUCKET}/aborted`, {
      ...s3rver.storeOptions,
      endpoint: proxy.endpoint,
      partSize: 5 * MiB,
      maxAttempts: 2,
    });
    try {
      const { file } = await randomFile('aborted.bin', 11 * MiB);
      const error = await expectCode(store.putFile('big', file), 'OBJECT_STORE_UNAVAILABLE');
      expect(error.message).toContain('ServiceUnavailable');
      expect(proxy.seen.filter((k) => k === 'PUT part3')).toHaveLength(2);
      expect(proxy.seen).toContain('DELETE upload'); // AbortMultipartUpload
      expect(proxy.seen).not.toContain('POST upload'); // never completed
      expect(await store.head('big')).toBeUndefined();
    } finally {
      await store.close();
      await proxy.stop();
    }
  });
});
