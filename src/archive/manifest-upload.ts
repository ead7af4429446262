import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { LitebaseError } from '../errors.js';
import { decodeManifest, type CheckpointManifest, type ManifestRange } from '../format/checkpoint-manifest.js';
import type { ObjectStore } from '../storage/object-store.js';
import { manifestEntry, type ArchiveIndex, type ArchivedRange } from './archive-index.js';
import { manifestKey, rangeKey } from './archive-keys.js';
import { sha256File } from './bundle-writer.js';
import { verifyUpload } from './verify-upload.js';

/**
 * Archives a range checkpoint (docs/FORMAT.md §11): the range files its manifest lists that the
 * archive does not hold yet, then the manifest, each checked after upload (verify-upload.ts). A
 * range file is immutable and its name unique, so a range the index holds (same key, same size and
 * SHA-256) is never uploaded again: a checkpoint costs the archive the ranges that changed since the
 * last archived one, not the database. The index is updated in memory (the manifest's entry, and
 * which manifests list each range); the caller writes it last, as for bundles.
 */

/** Range files uploaded at once. */
const PARALLEL_UPLOADS = 4;

export interface ManifestUploadOptions {
  store: ObjectStore;
  /** Updated in place: the manifest's entry and its ranges' listings. */
  index: ArchiveIndex;
  /** The manifest file on the shared folder (uploaded byte for byte) and what it decodes to. */
  manifestFile: string;
  manifest: CheckpointManifest;
  /** The shared folder's range files (`databases/<name>/ranges`). */
  rangesDir: string;
  /** Called before each upload; throws to give up (the compactor's check that it may still write). */
  checkStop?: () => void;
  logger?: Logger;
}

export interface ManifestUploadResult {
  key: string;
  /** Bytes uploaded: the new range files and the manifest (what the checkpoint cost the archive). */
  bytes: number;
  rangesUploaded: number;
  /** Ranges the archive held already (not uploaded again). */
  rangesHeld: number;
}

/** What archiving the manifest would upload (the ranges the archive lacks, and the manifest): what the archive policy weighs. */
export function manifestUploadCost(index: ArchiveIndex, manifest: CheckpointManifest, manifestBytes: number): number {
  return missingRanges(index, manifest).reduce((sum, { range }) => sum + range.bytes, manifestBytes);
}

export async function uploadManifest(options: ManifestUploadOptions): Promise<ManifestUploadResult> {
  const { store, index, manifest, logger } = options;
  const key = manifestKey(index.database, index.databaseId, manifest.position);
  const bytes = await fs.readFile(options.manifestFile);
  // What is uploaded is the file: it must be the manifest the caller decided on.
  const again = decodeManifest(bytes, options.manifestFile, index.databaseId);
  if (again.position !== manifest.position || again.checksum !== manifest.checksum || again.ranges.length !== manifest.ranges.length) {
    throw new LitebaseError(
      'CHECKPOINT_INVALID',
      `${options.manifestFile} is not the manifest being archived (position ${manifest.position})`,
      {
        details: { file: options.manifestFile },
      },
    );
  }

  // 1. The ranges the archive lacks. One it holds unverified (listed by no manifest: an upload cut short) is checked, and uploaded again if it differs.
  const missing = missingRanges(index, manifest);
  const held = new Map(index.ranges.map((entry) => [entry.key, entry]));
  let uploadedBytes = 0;
  let rangesUploaded = 0;
  const queue = [...missing];
  const worker = async (): Promise<void> => {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const { range, key: objectKey } = next;
      const orphan = held.get(objectKey);
      if (orphan && orphan.bytes === range.bytes) {
        try {
          await verifyUpload(store, objectKey, range.bytes, range.sha256);
          continue; // adopted: the object is the range
        } catch (error) {
          if (!(error instanceof LitebaseError && error.code === 'ARCHIVE_UPLOAD_MISMATCH')) throw error;
          logger?.warn({ key: objectKey }, 'archived range listed by no manifest differs from the shared one; uploading it again');
        }
      }
      const file = path.join(options.rangesDir, range.file);
      // Never archive a damaged range: the shared file must be what the manifest says.
      const sha256 = await sha256File(file);
      if (sha256 !== range.sha256) {
        throw new LitebaseError(
          'CHECKPOINT_INVALID',
          `${file} hashes to sha256 ${sha256}, the manifest at position ${manifest.position} says ${range.sha256}`,
          {
            details: { file },
          },
        );
      }
      options.checkStop?.();
      await store.putFile(objectKey, file);
      await verifyUpload(store, objectKey, range.bytes, range.sha256);
      uploadedBytes += range.bytes;
      rangesUploaded += 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(PARALLEL_UPLOADS, queue.length) }, worker));

  // 2. The manifest, once every range it lists is in place.
  options.checkStop?.();
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  await store.put(key, bytes);
  await verifyUpload(store, key, bytes.length, sha256);
  uploadedBytes += bytes.length;

  // 3. The index: the manifest's entry, and the manifests that list each range.
  for (const range of manifest.ranges) {
    const objectKey = rangeKey(index.database, index.databaseId, range.file);
    let entry = held.get(objectKey);
    if (!entry || entry.bytes !== range.bytes) {
      entry = { key: objectKey, bytes: range.bytes };
      held.set(objectKey, entry);
    }
    entry.sha256 = range.sha256;
    if (entry.firstListed === undefined || manifest.position < entry.firstListed) entry.firstListed = manifest.position;
    if (entry.lastListed === undefined || manifest.position > entry.lastListed) entry.lastListed = manifest.position;
  }
  index.ranges = [...held.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  index.checkpoints = index.checkpoints.filter((entry) => entry.key !== key);
  index.checkpoints.push(manifestEntry(key, manifest, bytes, uploadedBytes));
  logger?.info(
    { position: manifest.position.toString(), ranges: manifest.ranges.length, uploaded: rangesUploaded, bytes: uploadedBytes },
    'archived range checkpoint',
  );
  return { key, bytes: uploadedBytes, rangesUploaded, rangesHeld: manifest.ranges.length - rangesUploaded };
}

/** The manifest's ranges the archive does not hold verified (same key, size and SHA-256). */
function missingRanges(index: ArchiveIndex, manifest: CheckpointManifest): Array<{ range: ManifestRange; key: string }> {
  const held = new Map<string, ArchivedRange>(index.ranges.map((entry) => [entry.key, entry]));
  const missing: Array<{ range: ManifestRange; key: string }> = [];
  for (const range of manifest.ranges) {
    const key = rangeKey(index.database, index.databaseId, range.file);
    const entry = held.get(key);
    if (!entry || entry.bytes !== range.bytes || entry.sha256 !== range.sha256) missing.push({ range, key });
  }
  return missing;
}
