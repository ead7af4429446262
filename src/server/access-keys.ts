import { randomBytes, timingSafeEqual } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { LitebaseError, notFound, systemErrorCode } from '../errors.js';
import { readdirOrEmpty, writeFileAtomic } from '../storage/fs-util.js';
import { digestSecret } from './root-key.js';

/**
 * Access keys (docs/SECURITY.md). A key is `lb_<id>_<secret>`; only the SHA-256 of the whole key is
 * stored, in `<dataDir>/cluster/keys/<id>.json` on the shared file system, so every node sees the
 * same keys. Nodes cache a key record for at most `cacheMs`, which bounds how long a revoked key
 * keeps working on any node.
 */
export const ACTIONS = ['read', 'write', 'admin', 'restore', 'cluster'] as const;
export type Action = (typeof ACTIONS)[number];

export interface KeyRecord {
  id: string;
  name: string;
  /** Hex SHA-256 of the whole key string. */
  hash: string;
  createdAt: string;
  revokedAt: string | null;
  /** Database names or patterns with `*` (e.g. "app", "tenant-*", "*"). */
  databases: string[];
  actions: Action[];
}

/** Who is calling: the root key may do everything; other keys what their record allows. */
export interface Principal {
  readonly keyId: string;
  can(action: Action, database?: string): boolean;
}

export const ROOT_PRINCIPAL: Principal = { keyId: 'root', can: () => true };

const KEY_FORMAT = /^lb_([a-z0-9]{12})_([A-Za-z0-9_-]{20,})$/;

function patternMatches(pattern: string, name: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.includes('*')) return pattern === name;
  // A glob walk, not a regular expression: `^.*a.*a…b$` backtracks exponentially, and a key with
  // such a pattern would stall the event loop on every request it made.
  let p = 0;
  let n = 0;
  let star = -1;
  let resume = 0;
  while (n < name.length) {
    if (pattern[p] === '*') {
      star = p++;
      resume = n;
    } else if (p < pattern.length && pattern[p] === name[n]) {
      p++;
      n++;
    } else if (star >= 0) {
      p = star + 1;
      n = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

export function principalFor(record: KeyRecord): Principal {
  return {
    keyId: record.id,
    can: (action, database) =>
      record.actions.includes(action) &&
      // Actions on no particular database (cluster status, key listing) need the "*" pattern.
      (database === undefined ? record.databases.includes('*') : record.databases.some((pattern) => patternMatches(pattern, database))),
  };
}

export class AccessKeys {
  private readonly cache = new Map<string, { record: KeyRecord | undefined; loadedAt: number }>();

  constructor(
    private readonly dir: string,
    private readonly cacheMs = 500,
  ) {}

  private file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  async create(input: { name: string; databases: string[]; actions: Action[] }): Promise<{ record: KeyRecord; secret: string }> {
    const id = randomBytes(9)
      .toString('base64url')
      .toLowerCase()
      .replace(/[^a-z0-9]/g, '')
      .padEnd(12, '0')
      .slice(0, 12);
    const secret = `lb_${id}_${randomBytes(32).toString('base64url')}`;
    const record: KeyRecord = {
      id,
      name: input.name,
      hash: digestSecret(secret).toString('hex'),
      createdAt: new Date().toISOString(),
      revokedAt: null,
      databases: input.databases,
      actions: input.actions,
    };
    await fs.mkdir(this.dir, { recursive: true });
    await writeFileAtomic(this.file(id), JSON.stringify(record, null, 2) + '\n', 0o600);
    return { record, secret };
  }

  async list(): Promise<KeyRecord[]> {
    const records: KeyRecord[] = [];
    for (const name of (await readdirOrEmpty(this.dir)).filter((entry) => /^[a-z0-9]{12}\.json$/.test(entry)).sort()) {
      const record = await this.read(name.slice(0, 12));
      if (record) records.push(record);
    }
    return records;
  }

  async revoke(id: string): Promise<KeyRecord> {
    if (!/^[a-z0-9]{12}$/.test(id)) throw notFound('KEY_NOT_FOUND', `no access key ${id}`);
    const record = await this.read(id);
    if (!record) throw notFound('KEY_NOT_FOUND', `no access key ${id}`);
    if (!record.revokedAt) {
      record.revokedAt = new Date().toISOString();
      await writeFileAtomic(this.file(id), JSON.stringify(record, null, 2) + '\n', 0o600);
    }
    this.cache.delete(id);
    return record;
  }

  /** The principal for a presented key, or undefined when it is unknown, revoked or wrong. */
  async authenticate(presented: string): Promise<Principal | undefined> {
    const match = KEY_FORMAT.exec(presented);
    if (!match?.[1]) return undefined;
    const record = await this.cached(match[1]);
    if (!record || record.revokedAt) return undefined;
    const expected = Buffer.from(record.hash, 'hex');
    const actual = digestSecret(presented);
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return undefined;
    return principalFor(record);
  }

  /**
   * A key's record when it exists and is not revoked, for signed requests: they name the key by
   * id and prove it with an HMAC whose key derives from `hash` (src/server/request-signing.ts).
   */
  async liveRecord(id: string): Promise<KeyRecord | undefined> {
    if (!/^[a-z0-9]{12}$/.test(id)) return undefined;
    const record = await this.cached(id);
    return record && !record.revokedAt ? record : undefined;
  }

  private async cached(id: string): Promise<KeyRecord | undefined> {
    const entry = this.cache.get(id);
    if (entry && Date.now() - entry.loadedAt < this.cacheMs) return entry.record;
    const record = await this.read(id);
    this.cache.set(id, { record, loadedAt: Date.now() });
    if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value as string);
    return record;
  }

  private async read(id: string): Promise<KeyRecord | undefined> {
    try {
      return JSON.parse(await fs.readFile(this.file(id), 'utf8')) as KeyRecord;
    } catch (error) {
      if (systemErrorCode(error) === 'ENOENT') return undefined;
      throw new LitebaseError('KEYS_UNREADABLE', `cannot read access key ${id}: ${(error as Error).message}`, { cause: error });
    }
  }
}

export function describeKey(record: KeyRecord): Omit<KeyRecord, 'hash'> {
  const { hash: _hash, ...rest } = record;
  return rest;
}
