import { parseRangeFileName } from '../format/checkpoint-manifest.js';
import { assertDatabaseName, formatPosition } from '../storage/layout.js';

/**
 * Where a database's history lives in the object store (docs/ARCHITECTURE.md §3, docs/FORMAT.md §11):
 *
 *   databases/<name>/<database id>/segments/<first>-<last>.seg   a bundle of archived segments
 *   databases/<name>/<database id>/checkpoints/<position>.ckpt    a full checkpoint (read, no longer written)
 *   databases/<name>/<database id>/manifests/<position>.json      a range checkpoint's manifest
 *   databases/<name>/<database id>/ranges/<range file name>       a range file, uploaded once, shared by manifests
 *   databases/<name>/<database id>/index.json                     what the folders hold, with times
 *
 * Positions are 20-digit zero-padded decimals, so keys sort like positions. The database id
 * separates a database from an earlier one of the same name (dropped, then created again).
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const BUNDLE_NAME = /^(\d{20})-(\d{20})\.seg$/;
const CHECKPOINT_NAME = /^(\d{20})\.ckpt$/;
const MANIFEST_NAME = /^(\d{20})\.json$/;

export function isDatabaseId(value: string): boolean {
  return UUID.test(value);
}

/** Every id ever archived under a name sits below this prefix. */
export function databaseNamePrefix(name: string): string {
  return `databases/${assertDatabaseName(name)}/`;
}

export function archivePrefix(name: string, databaseId: string): string {
  if (!isDatabaseId(databaseId)) throw new RangeError(`not a database id: ${JSON.stringify(databaseId)}`);
  return `${databaseNamePrefix(name)}${databaseId}/`;
}

export function bundleKey(name: string, databaseId: string, first: bigint, last: bigint): string {
  return `${archivePrefix(name, databaseId)}segments/${formatPosition(first)}-${formatPosition(last)}.seg`;
}

export function checkpointKey(name: string, databaseId: string, position: bigint): string {
  return `${archivePrefix(name, databaseId)}checkpoints/${formatPosition(position)}.ckpt`;
}

/** A checkpoint's manifest (docs/FORMAT.md §8): byte for byte the shared folder's. */
export function manifestKey(name: string, databaseId: string, position: bigint): string {
  return `${archivePrefix(name, databaseId)}manifests/${formatPosition(position)}.json`;
}

/** A range file, under the same name as on the shared folder (uploaded once: it never changes). */
export function rangeKey(name: string, databaseId: string, file: string): string {
  if (!parseRangeFileName(file)) throw new RangeError(`not a range file name: ${JSON.stringify(file)}`);
  return `${archivePrefix(name, databaseId)}ranges/${file}`;
}

export function indexKey(name: string, databaseId: string): string {
  return `${archivePrefix(name, databaseId)}index.json`;
}

export type ArchiveKey =
  | { kind: 'bundle'; first: bigint; last: bigint }
  | { kind: 'checkpoint'; position: bigint }
  | { kind: 'manifest'; position: bigint }
  | { kind: 'range'; file: string; index: number; position: bigint }
  | { kind: 'index' };

/** What a key below `archivePrefix(name, id)` is, or undefined for anything else (left alone). */
export function parseArchiveKey(prefix: string, key: string): ArchiveKey | undefined {
  if (!key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length);
  if (rest === 'index.json') return { kind: 'index' };
  const [folder, name, ...more] = rest.split('/');
  if (more.length > 0 || name === undefined) return undefined;
  if (folder === 'segments') {
    const match = BUNDLE_NAME.exec(name);
    if (!match?.[1] || !match[2]) return undefined;
    const first = BigInt(match[1]);
    const last = BigInt(match[2]);
    return first >= 1n && last >= first ? { kind: 'bundle', first, last } : undefined;
  }
  if (folder === 'checkpoints') {
    const match = CHECKPOINT_NAME.exec(name);
    return match?.[1] ? { kind: 'checkpoint', position: BigInt(match[1]) } : undefined;
  }
  if (folder === 'manifests') {
    const match = MANIFEST_NAME.exec(name);
    return match?.[1] ? { kind: 'manifest', position: BigInt(match[1]) } : undefined;
  }
  if (folder === 'ranges') {
    const parsed = parseRangeFileName(name);
    return parsed ? { kind: 'range', file: name, ...parsed } : undefined;
  }
  return undefined;
}
