import * as fs from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { LeaseHolder, LeaseRecord, Role, TermClaim } from './election.js';

/**
 * The cluster state on the shared folder (docs/ARCHITECTURE.md §3), read and written with synchronous calls:
 *
 * - `cluster/terms/<term>`: created exclusively (`open(..., 'wx')`) by the node that wins the term,
 *   holding JSON `{ nodeId, address, createdAt }`. Never removed, never rewritten: terms are never
 *   reused. The name is the term in decimal, without padding.
 * - `cluster/lease.json`: `{ term, nodeId, address, expiresAt, renewedAt, holder }` (term as a
 *   decimal string, times in wall-clock ms, holder `{ host, instance, life, pid, boot }` or absent),
 *   replaced atomically: temp file, fsync, rename, fsync folder.
 * - `cluster/nodes/<nodeId>.json`: heartbeats `{ nodeId, address, role, term, lastHeartbeat,
 *   startedAt, databases }`, replaced atomically (no fsync: a lost heartbeat is rewritten a second later).
 *
 * `LeaseStore` runs inside the lease keeper thread (src/cluster/lease-keeper-thread.ts);
 * `readHeartbeats` is for the main thread.
 */

export interface Heartbeat {
  nodeId: string;
  address: string;
  role: Role;
  /** The highest term this node has seen, in decimal. */
  term: string;
  lastHeartbeat: number;
  /** When this node's process started (ms); absent in heartbeats of older nodes. */
  startedAt?: number;
  /** Filled in by the engine: each database's applied (replica) or durable (primary) position. */
  databases: Record<string, { position: string }>;
}

export function hasErrorCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

/** A term file's name: a decimal number without leading zeros. Anything else is not a term. */
export function parseTermName(name: string): bigint | undefined {
  return /^(0|[1-9][0-9]{0,30})$/.test(name) ? BigInt(name) : undefined;
}

function parseDecimal(value: unknown): bigint | undefined {
  if (typeof value === 'string' && /^[0-9]{1,31}$/.test(value)) return BigInt(value);
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value);
  return undefined;
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** undefined when the text is not a well-formed lease record. */
export function parseLease(text: string): LeaseRecord | undefined {
  const value = parseObject(text);
  if (value === undefined) return undefined;
  const term = parseDecimal(value.term);
  const { nodeId, address, expiresAt, renewedAt } = value;
  if (term === undefined || typeof nodeId !== 'string' || typeof address !== 'string') return undefined;
  if (typeof expiresAt !== 'number' || !Number.isFinite(expiresAt)) return undefined;
  const holder = parseHolder(value.holder);
  return { term, nodeId, address, expiresAt, renewedAt: typeof renewedAt === 'number' ? renewedAt : 0, ...(holder ? { holder } : {}) };
}

/** A malformed holder counts as none: it can only ever make a restart wait, never take over. */
function parseHolder(value: unknown): LeaseHolder | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const { host, instance, life, pid, boot } = value as Record<string, unknown>;
  if (typeof host !== 'string' || typeof instance !== 'string' || typeof life !== 'string') return undefined;
  if (host === '' || instance === '' || life === '') return undefined;
  return { host, instance, life, pid: typeof pid === 'number' ? pid : 0, boot: typeof boot === 'string' ? boot : '' };
}

export function formatLease(record: LeaseRecord): string {
  return (
    JSON.stringify({
      term: record.term.toString(),
      nodeId: record.nodeId,
      address: record.address,
      expiresAt: record.expiresAt,
      renewedAt: record.renewedAt,
      ...(record.holder ? { holder: record.holder } : {}),
    }) + '\n'
  );
}

/** A term file's content; unreadable content gives a claim with unknown holder. */
export function parseTermClaim(term: bigint, text: string): TermClaim {
  const value = parseObject(text);
  const field = (name: string): unknown => (value === undefined ? undefined : value[name]);
  const nodeId = field('nodeId');
  const address = field('address');
  const createdAt = field('createdAt');
  return {
    term,
    nodeId: typeof nodeId === 'string' ? nodeId : undefined,
    address: typeof address === 'string' ? address : undefined,
    createdAt: typeof createdAt === 'number' && Number.isFinite(createdAt) ? createdAt : undefined,
  };
}

export function formatTermClaim(claim: { nodeId: string; address: string; createdAt: number }): string {
  return JSON.stringify({ nodeId: claim.nodeId, address: claim.address, createdAt: claim.createdAt }) + '\n';
}

export function parseHeartbeat(text: string): Heartbeat | undefined {
  const value = parseObject(text);
  if (value === undefined) return undefined;
  const { nodeId, address, role, term, lastHeartbeat, startedAt, databases } = value;
  if (typeof nodeId !== 'string' || typeof address !== 'string') return undefined;
  if (role !== 'primary' && role !== 'replica' && role !== 'candidate') return undefined;
  if (typeof lastHeartbeat !== 'number') return undefined;
  const positions: Record<string, { position: string }> = {};
  if (typeof databases === 'object' && databases !== null && !Array.isArray(databases)) {
    for (const [name, entry] of Object.entries(databases as Record<string, unknown>)) {
      const position = typeof entry === 'object' && entry !== null ? (entry as { position?: unknown }).position : undefined;
      if (typeof position === 'string') positions[name] = { position };
    }
  }
  return {
    nodeId,
    address,
    role,
    term: typeof term === 'string' ? term : '0',
    lastHeartbeat,
    ...(typeof startedAt === 'number' ? { startedAt } : {}),
    databases: positions,
  };
}

export function formatHeartbeat(heartbeat: Heartbeat): string {
  return JSON.stringify(heartbeat) + '\n';
}

export class LeaseStore {
  readonly clusterDir: string;
  readonly termsDir: string;
  readonly nodesDir: string;
  readonly leaseFile: string;

  constructor(dataDir: string) {
    this.clusterDir = path.join(dataDir, 'cluster');
    this.termsDir = path.join(this.clusterDir, 'terms');
    this.nodesDir = path.join(this.clusterDir, 'nodes');
    this.leaseFile = path.join(this.clusterDir, 'lease.json');
  }

  ensureLayout(): void {
    fs.mkdirSync(this.termsDir, { recursive: true });
    fs.mkdirSync(this.nodesDir, { recursive: true });
  }

  /** undefined when there is no lease.json, or it is not a lease record. */
  readLease(): LeaseRecord | undefined {
    let text: string;
    try {
      // Read as bytes, then decode: Node 20's readFileSync(file, 'utf8') aborts the whole process
      // (a native assertion, not an exception) when close() fails, as it does with ENOTCONN once
      // the shared file system's client died (test/ceph/faults.test.ts).
      text = fs.readFileSync(this.leaseFile).toString('utf8');
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT')) return undefined;
      throw error;
    }
    return parseLease(text);
  }

  writeLease(record: LeaseRecord): void {
    this.replace(this.clusterDir, this.leaseFile, formatLease(record), true);
  }

  /** The highest term in cluster/terms, with its content; undefined when there is none. */
  highestTerm(): TermClaim | undefined {
    let highest: bigint | undefined;
    for (const name of fs.readdirSync(this.termsDir)) {
      const term = parseTermName(name);
      if (term !== undefined && (highest === undefined || term > highest)) highest = term;
    }
    if (highest === undefined) return undefined;
    let text = '';
    try {
      text = fs.readFileSync(path.join(this.termsDir, highest.toString())).toString('utf8'); // bytes: see readLease
    } catch (error) {
      if (!hasErrorCode(error, 'ENOENT')) throw error;
    }
    return parseTermClaim(highest, text);
  }

  /**
   * Create cluster/terms/<term> exclusively. true: this node won the term; false: it exists
   * already (another node won it). A file created but not fully written is left in place: the
   * term is spent either way.
   */
  claimTerm(term: bigint, claim: { nodeId: string; address: string; createdAt: number }): boolean {
    const file = path.join(this.termsDir, term.toString());
    let fd: number;
    try {
      fd = fs.openSync(file, 'wx', 0o644);
    } catch (error) {
      if (hasErrorCode(error, 'EEXIST')) return false;
      throw error;
    }
    try {
      const bytes = Buffer.from(formatTermClaim(claim), 'utf8');
      let offset = 0;
      while (offset < bytes.length) offset += fs.writeSync(fd, bytes, offset, bytes.length - offset);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    this.fsyncDir(this.termsDir);
    return true;
  }

  writeHeartbeat(heartbeat: Heartbeat): void {
    this.replace(this.nodesDir, path.join(this.nodesDir, `${heartbeat.nodeId}.json`), formatHeartbeat(heartbeat), false);
  }

  /** Readers see the old or the new content, never a torn one. */
  private replace(dir: string, target: string, text: string, durable: boolean): void {
    const suffix = `${process.pid.toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
    const temp = path.join(dir, `.tmp-${target.slice(dir.length + 1)}-${suffix}`);
    try {
      const fd = fs.openSync(temp, 'wx', 0o644);
      try {
        const bytes = Buffer.from(text, 'utf8');
        let offset = 0;
        while (offset < bytes.length) offset += fs.writeSync(fd, bytes, offset, bytes.length - offset);
        if (durable) fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(temp, target);
    } catch (error) {
      try {
        fs.rmSync(temp, { force: true });
      } catch {
        // the write error is the one to report
      }
      throw error;
    }
    if (durable) this.fsyncDir(dir);
  }

  private fsyncDir(dir: string): void {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}

/** Every node's last heartbeat, sorted by node id (main thread, for GET /v1/cluster). */
export async function readHeartbeats(dataDir: string): Promise<Heartbeat[]> {
  const dir = path.join(dataDir, 'cluster', 'nodes');
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if (hasErrorCode(error, 'ENOENT')) return [];
    throw error;
  }
  const heartbeats: Heartbeat[] = [];
  for (const name of names) {
    if (name.startsWith('.') || !name.endsWith('.json')) continue;
    let text: string;
    try {
      text = await readFile(path.join(dir, name), 'utf8');
    } catch (error) {
      if (hasErrorCode(error, 'ENOENT')) continue;
      throw error;
    }
    const heartbeat = parseHeartbeat(text);
    if (heartbeat !== undefined) heartbeats.push(heartbeat);
  }
  return heartbeats.sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
}
