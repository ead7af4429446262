import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { systemErrorCode } from '../errors.js';
import { fsyncDir } from '../storage/fs-util.js';

export interface RootKey {
  secret: string;
  /** Set only when this start generated the key: the one time it is shown. */
  generated: boolean;
  file: string | undefined;
}

/**
 * The root access key: from the configuration, else from the data dir, else generated now and
 * saved there with mode 0600 (exclusive create, so two nodes starting together agree on one key).
 */
export async function loadRootKey(configured: string | undefined, file: string): Promise<RootKey> {
  if (configured) return { secret: configured, generated: false, file: undefined };
  try {
    return { secret: (await fs.readFile(file, 'utf8')).trim(), generated: false, file };
  } catch (error) {
    if (systemErrorCode(error) !== 'ENOENT') throw error;
  }
  await fs.mkdir(path.dirname(file), { recursive: true });
  const secret = `lb_root_${randomBytes(32).toString('base64url')}`;
  try {
    const handle = await fs.open(file, 'wx', 0o600);
    try {
      await handle.writeFile(secret + '\n');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsyncDir(path.dirname(file));
    return { secret, generated: true, file };
  } catch (error) {
    if (systemErrorCode(error) === 'EEXIST') return loadRootKey(undefined, file);
    throw error;
  }
}

/** SHA-256 of a secret: what keys are stored and compared as (one-shot `hash`: no Hash object per request). */
export const digestSecret = (value: string): Buffer => hash('sha256', value, 'buffer');

/**
 * Compare a presented secret with the expected one in constant time: both are hashed first, which
 * makes the lengths equal. The expected side is hashed once.
 */
export function secretMatcher(expected: string): (presented: string) => boolean {
  const expectedDigest = digestSecret(expected);
  return (presented) => timingSafeEqual(digestSecret(presented), expectedDigest);
}
