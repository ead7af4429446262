import { describe, expect, it } from 'vitest';
import type { LeaseRecord, TermClaim } from '../../../src/cluster/election.js';
import {
  formatHeartbeat,
  formatLease,
  formatTermClaim,
  parseHeartbeat,
  parseLease,
  parseTermClaim,
  parseTermName,
} from '../../../src/cluster/lease-store.js';

/** The cluster files' formats (src/cluster/lease-store.ts): lease.json, term claims, heartbeats. */

const NOW = 1_800_000_000_000;

function claim(term: bigint, nodeId: string | undefined, createdAt: number | undefined): TermClaim {
  return { term, nodeId, address: nodeId === undefined ? undefined : `http://${nodeId}`, createdAt };
}

describe('cluster files', () => {
  it('round-trips lease records, with terms beyond 2^53', () => {
    const record: LeaseRecord = { term: 2n ** 60n + 1n, nodeId: 'n1', address: 'http://10.0.0.1:8080', expiresAt: NOW, renewedAt: NOW - 5 };
    expect(parseLease(formatLease(record))).toEqual(record);
    expect(JSON.parse(formatLease(record)).term).toBe('1152921504606846977');
  });

  it('round-trips the holder of a lease, and reads a malformed holder as none', () => {
    const holder = { host: 'm/h', instance: 'i-1', life: 'l-1', pid: 42, boot: 'b-1' };
    const record: LeaseRecord = { term: 3n, nodeId: 'n1', address: 'http://a', expiresAt: NOW, renewedAt: NOW - 5, holder };
    expect(parseLease(formatLease(record))).toEqual(record);
    const base = { term: '3', nodeId: 'n1', address: 'http://a', expiresAt: NOW, renewedAt: NOW - 5 };
    for (const bad of [
      null,
      'x',
      [],
      { host: 'm/h', instance: 'i-1' },
      { host: '', instance: 'i', life: 'l' },
      { host: 1, instance: 'i', life: 'l' },
    ]) {
      const parsed = parseLease(JSON.stringify({ ...base, holder: bad }));
      expect(parsed, JSON.stringify(bad)).toBeDefined();
      expect(parsed?.holder, JSON.stringify(bad)).toBeUndefined();
    }
  });

  it('refuses malformed lease records', () => {
    for (const text of [
      '',
      '{',
      'null',
      '[]',
      '{"term":"x","nodeId":"a","address":"b","expiresAt":1}',
      '{"term":"1","nodeId":2,"address":"b","expiresAt":1}',
      '{"term":"1","nodeId":"a","address":"b"}',
    ]) {
      expect(parseLease(text), text).toBeUndefined();
    }
  });

  it('reads term names and claims', () => {
    expect(parseTermName('1')).toBe(1n);
    expect(parseTermName('12345678901234567890')).toBe(12345678901234567890n);
    for (const name of ['01', '', '-1', '1.5', '.tmp-1-abc', 'lease.json']) expect(parseTermName(name), name).toBeUndefined();
    expect(parseTermClaim(3n, formatTermClaim({ nodeId: 'a', address: 'http://a', createdAt: NOW }))).toEqual(claim(3n, 'a', NOW));
    expect(parseTermClaim(3n, '')).toEqual(claim(3n, undefined, undefined));
    expect(parseTermClaim(3n, '{"nodeId":')).toEqual(claim(3n, undefined, undefined));
  });

  it('round-trips heartbeats and drops malformed positions', () => {
    const heartbeat = {
      nodeId: 'a',
      address: 'http://a',
      role: 'replica' as const,
      term: '4',
      lastHeartbeat: NOW,
      databases: { app: { position: '42' } },
    };
    expect(parseHeartbeat(formatHeartbeat(heartbeat))).toEqual(heartbeat);
    const odd = parseHeartbeat(
      '{"nodeId":"a","address":"x","role":"primary","term":"1","lastHeartbeat":1,"databases":{"x":{"position":3},"y":{"position":"7"}}}',
    );
    expect(odd?.databases).toEqual({ y: { position: '7' } });
    expect(parseHeartbeat('{"nodeId":"a","address":"x","role":"boss","lastHeartbeat":1}')).toBeUndefined();
  });
});
