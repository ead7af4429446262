import { createWriteStream, promises as fs, type Dirent } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pathToFileURL } from 'node:url';
import { errorMessage, systemErrorCode } from '../errors.js';
import { fsyncDir, tempName } from './fs-util.js';
import {
  assertObjectKey,
  assertObjectPrefix,
  compareKeys,
  ObjectStoreError,
  sharedAllocator,
  type SharedAllocator,
  type ObjectInfo,
  type ObjectStore,
  type ObjectStoreErrorCode,
  type GetOptions,
} from './object-store.js';

/**
 * The object store as a local folder (`file:///abs/path`), the embedded default. An object is a
 * file at `<root>/<key>`. Writes go to a temp file in the same folder (a name starting with '.',
 * which no key may have), are fsynced, then renamed into place, so a reader sees a whole object or
 * none. Folders are created as needed and removed again when a delete empties them.
 *
 * A key cannot be both an object and the folder of other objects ('a' and 'a/b'); S3 allows that,
 * Litebase's layout never needs it.
 */
export class FileObjectStore implements ObjectStore {
  readonly url: string;

  constructor(readonly root: string) {
    this.url = pathToFileURL(root).href;
  }

  async put(key: string, body: Uint8Array | Readable): Promise<void> {
    const target = this.pathOf(key);
    await this.writeAtomic(key, target, async (temp) => {
      if (body instanceof Uint8Array) {
        await fs.writeFile(temp, body, { flag: 'wx' });
      } else {
        await pipeline(body, createWriteStream(temp, { flags: 'wx' }));
      }
    });
  }

  async putFile(key: string, filePath: string): Promise<void> {
    const target = this.pathOf(key);
    // Errors about the source file are the caller's (its own ENOENT), not the store's.
    await fs.access(filePath);
    await this.writeAtomic(key, target, async (temp) => {
      await fs.copyFile(filePath, temp, 0);
    });
  }

  async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    const file = this.pathOf(key);
    try {
      return options.shared ? await readIntoSharedMemory(file, sharedAllocator(options.shared)) : await fs.readFile(file);
    } catch (error) {
      throw this.failure(error, 'get', key);
    }
  }

  async getStream(key: string): Promise<Readable> {
    const file = this.pathOf(key);
    try {
      const handle = await fs.open(file, 'r');
      // Opening first turns a missing key into OBJECT_NOT_FOUND here, not as a stream error later.
      return handle.createReadStream();
    } catch (error) {
      throw this.failure(error, 'get', key);
    }
  }

  async getToFile(key: string, filePath: string): Promise<void> {
    const source = this.pathOf(key);
    await fs.mkdir(path.dirname(filePath), { recursive: true });
    const temp = tempName(filePath);
    try {
      try {
        await fs.copyFile(source, temp);
      } catch (error) {
        throw this.failure(error, 'get', key);
      }
      await syncFile(temp);
      await fs.rename(temp, filePath);
    } catch (error) {
      await fs.rm(temp, { force: true });
      throw error;
    }
    await fsyncDir(path.dirname(filePath));
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const file = this.pathOf(key);
    try {
      const stat = await fs.stat(file);
      return stat.isFile() ? { key, size: stat.size, lastModified: stat.mtime } : undefined;
    } catch (error) {
      if (isAbsent(error)) return undefined;
      throw this.failure(error, 'head', key);
    }
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    assertObjectPrefix(prefix, this.url);
    const cut = prefix.lastIndexOf('/') + 1;
    const folderKey = prefix.slice(0, cut); // '' or 'a/b/'
    const namePrefix = prefix.slice(cut);
    yield* this.walk(folderKey, namePrefix);
  }

  async delete(keys: readonly string[]): Promise<void> {
    const files = keys.map((key) => ({ key, file: this.pathOf(key) }));
    const folders = new Set<string>();
    for (const { key, file } of files) {
      try {
        await fs.unlink(file);
        folders.add(path.dirname(file));
      } catch (error) {
        // Absent, or a folder (which is not an object): nothing to delete.
        if (isAbsent(error) || systemErrorCode(error) === 'EISDIR') continue;
        throw this.failure(error, 'delete', key);
      }
    }
    for (const folder of folders) {
      try {
        await fsyncDir(folder);
      } catch (error) {
        if (!isAbsent(error)) throw this.failure(error, 'delete', path.relative(this.root, folder));
      }
    }
    for (const folder of folders) await this.pruneEmptyFolders(folder);
  }

  async verify(): Promise<void> {
    try {
      await fs.mkdir(this.root, { recursive: true });
      await fs.access(this.root, fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK);
    } catch (error) {
      const system = systemErrorCode(error);
      if (system === 'EEXIST' || system === 'ENOTDIR') {
        // The root, or a folder on the way to it, is a file.
        throw new ObjectStoreError('OBJECT_STORE_BUCKET_MISSING', `object store ${this.url}: ${this.root} is not a folder`, {
          details: { store: this.url, systemCode: system },
          cause: error,
        });
      }
      throw this.failure(error, 'verify', undefined);
    }
  }

  async close(): Promise<void> {}

  private pathOf(key: string): string {
    assertObjectKey(key, this.url);
    return path.join(this.root, ...key.split('/'));
  }

  /**
   * Writes through a temp file beside `target`: fill, fsync, rename, fsync the folder. Folders
   * made on the way are fsynced into their parents too. A concurrent delete may remove an emptied
   * folder between our mkdir and our create; then we make it again.
   */
  private async writeAtomic(key: string, target: string, fill: (temp: string) => Promise<void>): Promise<void> {
    const folder = path.dirname(target);
    const temp = tempName(target);
    for (let attempt = 1; ; attempt++) {
      try {
        await this.makeFolders(folder);
        await fill(temp);
        break;
      } catch (error) {
        await fs.rm(temp, { force: true }).catch(() => undefined);
        if (systemErrorCode(error) === 'ENOENT' && attempt < 3 && !(await exists(folder))) continue;
        throw this.failure(error, 'put', key);
      }
    }
    try {
      await syncFile(temp);
      await fs.rename(temp, target);
      await fsyncDir(folder);
    } catch (error) {
      await fs.rm(temp, { force: true }).catch(() => undefined);
      throw this.failure(error, 'put', key);
    }
  }

  private async makeFolders(folder: string): Promise<void> {
    const first = await fs.mkdir(folder, { recursive: true });
    if (first === undefined) return;
    // Every folder from `first` down to `folder` is new: fsync each one's parent.
    let dir = folder;
    const made: string[] = [];
    while (dir.length >= first.length) {
      made.push(dir);
      dir = path.dirname(dir);
    }
    for (const created of made.reverse()) await fsyncDir(path.dirname(created));
  }

  private async pruneEmptyFolders(folder: string): Promise<void> {
    let dir = folder;
    while (dir !== this.root && dir.startsWith(this.root + path.sep)) {
      try {
        await fs.rmdir(dir);
      } catch {
        return; // not empty (ENOTEMPTY), already gone, or anything else: leave it
      }
      dir = path.dirname(dir);
    }
  }

  /**
   * Depth-first over `<root>/<folderKey>`, sorting each folder's entries so that the keys come out
   * in byte order: a folder sorts as its name plus '/', so 'a-c' (0x2d) comes before 'a/b' (0x2f).
   */
  private async *walk(folderKey: string, namePrefix: string): AsyncGenerator<ObjectInfo> {
    const folder = path.join(this.root, ...folderKey.split('/').filter((s) => s !== ''));
    let entries: Dirent[];
    try {
      entries = await fs.readdir(folder, { withFileTypes: true });
    } catch (error) {
      if (isAbsent(error)) return;
      throw this.failure(error, 'list', folderKey + namePrefix);
    }
    const visible = entries
      .filter((entry) => !entry.name.startsWith('.') && entry.name.startsWith(namePrefix))
      .filter((entry) => entry.isFile() || entry.isDirectory())
      .map((entry) => ({ entry, sortKey: entry.isDirectory() ? `${entry.name}/` : entry.name }))
      .sort((a, b) => compareKeys(a.sortKey, b.sortKey));
    for (const { entry } of visible) {
      const key = folderKey + entry.name;
      if (entry.isDirectory()) {
        yield* this.walk(`${key}/`, '');
        continue;
      }
      try {
        const stat = await fs.stat(path.join(folder, entry.name));
        yield { key, size: stat.size, lastModified: stat.mtime };
      } catch (error) {
        if (isAbsent(error)) continue; // deleted while we walked
        throw this.failure(error, 'list', key);
      }
    }
  }

  private failure(error: unknown, operation: string, key: string | undefined): ObjectStoreError {
    if (error instanceof ObjectStoreError) return error;
    const system = systemErrorCode(error);
    let code: ObjectStoreErrorCode = 'OBJECT_STORE_UNAVAILABLE';
    if (operation !== 'put' && operation !== 'verify' && (isAbsent(error) || system === 'EISDIR')) code = 'OBJECT_NOT_FOUND';
    else if (system === 'EACCES' || system === 'EPERM') code = 'OBJECT_STORE_ACCESS_DENIED';
    else if (operation === 'put' && (system === 'ENOTDIR' || system === 'EISDIR' || system === 'EEXIST')) {
      code = 'OBJECT_KEY_INVALID'; // 'a/b' where 'a' is an object, or 'a' where 'a/' holds objects
    }
    const what = key === undefined ? '' : ` key ${JSON.stringify(key)}`;
    const reason = code === 'OBJECT_NOT_FOUND' ? 'no such object' : errorMessage(error);
    return new ObjectStoreError(code, `object store ${this.url}: ${operation}${what} failed: ${reason}`, {
      details: { store: this.url, ...(key === undefined ? {} : { key }), operation, ...(system ? { systemCode: system } : {}) },
      cause: error,
    });
  }
}

function isAbsent(error: unknown): boolean {
  const code = systemErrorCode(error);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.stat(file);
    return true;
  } catch {
    return false;
  }
}

async function syncFile(file: string): Promise<void> {
  const handle = await fs.open(file, 'r+');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** A whole file read straight into shared memory from `allocate` (no second copy). */
async function readIntoSharedMemory(file: string, allocate: SharedAllocator): Promise<Buffer> {
  const handle = await fs.open(file, 'r');
  try {
    const { size } = await handle.stat();
    const bytes = allocate(size);
    let filled = 0;
    while (filled < size) {
      const { bytesRead } = await handle.read(bytes, filled, size - filled, filled);
      if (bytesRead === 0) throw new Error(`${file} ended after ${filled} of ${size} bytes`);
      filled += bytesRead;
    }
    return bytes;
  } finally {
    await handle.close();
  }
}
