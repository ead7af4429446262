import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import { parseJsonBody, type JsonTextParser } from '../../../src/server/json-body.js';
import { decodeExactValue } from '../../../src/sql/exact-values.js';
import { decodeValue } from '../../../src/sql/values.js';
import { Prng } from '../../support/golden-segments.js';

/**
 * The JSON body parser (src/server/json-body.ts) against JSON.parse: every body gives the same
 * value (BLOB params bind the same bytes and serialize to the same JSON), a `{"$blob":"` inside a
 * TEXT param is left alone, params it does not take (spaces, bad base64) reach the usual checks,
 * and whatever fastify's parser refuses is refused the same way.
 */

const parseText = Fastify().getDefaultJsonParser('error', 'error') as unknown as JsonTextParser;

function parse(text: string): Promise<unknown> {
  return new Promise((resolve, reject) =>
    parseJsonBody(Buffer.from(text, 'utf8'), parseText, (error, value) => (error ? reject(error) : resolve(value))),
  );
}

/** Pads a body past the size from which blobs are taken out (a TEXT param of spaces). */
const PAD = ' '.repeat(70 * 1024);

function bytesOf(prng: Prng, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = prng.below(256);
  return bytes;
}

describe('parseJsonBody', () => {
  it('gives what JSON.parse gives, with BLOB params binding their bytes', async () => {
    const prng = new Prng(14);
    // Sizes around the 64 KiB pieces, and the three paddings.
    const blobs = [0, 1, 2, 3, 4, 100, 48 * 1024, 48 * 1024 + 1, 200_000].map((length) => bytesOf(prng, length));
    const params = [
      ...blobs.map((bytes) => ({ $blob: bytes.toString('base64') })),
      'a\\', // a string ending in a backslash, right before a blob
      { $blob: blobs[5]!.toString('base64') },
      'text with {"$blob":"AAAA"} inside',
      '{"$blob":"AAAA"}',
      { $int: '-1234567890123456789' },
      12.5,
      null,
      PAD,
    ];
    const text = JSON.stringify({
      statements: [
        { sql: 'INSERT INTO t VALUES (?)', params },
        { sql: 'SELECT 1', params: { b: params[4] } },
      ],
    });
    expect(text).toContain('"{\\"$blob\\":\\"AAAA\\"}"');
    const parsed = (await parse(text)) as { statements: Array<{ params: unknown }> };
    // Forwarded as it came (the getter encodes again), and bound as JSON.parse's value binds.
    expect(JSON.stringify(parsed)).toBe(text);
    const plain = JSON.parse(text) as { statements: Array<{ params: unknown }> };
    const got = parsed.statements[0]!.params as unknown[];
    const want = plain.statements[0]!.params as unknown[];
    expect(got.length).toBe(want.length);
    for (const [i, value] of want.entries()) {
      expect(decodeValue(got[i])).toEqual(decodeValue(value));
      if (typeof value === 'object' && value !== null && '$blob' in value)
        expect(decodeExactValue(got[i])).toEqual(decodeExactValue(value));
    }
    expect(decodeValue((parsed.statements[1]!.params as Record<string, unknown>).b)).toEqual(blobs[4]);
  });

  it('decodes base64 with stray bits in its last characters as Buffer.from does', async () => {
    const texts = ['AB==', 'ABC=', 'AAB=', '////', '+/+/AB=='];
    const parsed = (await parse(JSON.stringify({ params: [...texts.map(($blob) => ({ $blob })), PAD] }))) as { params: unknown[] };
    for (const [i, text] of texts.entries()) expect(decodeValue(parsed.params[i])).toEqual(Buffer.from(text, 'base64'));
  });

  it('leaves params it does not take to the usual checks', async () => {
    const spaced = `{ "$blob" : "${Buffer.from('spaced').toString('base64')}" }`;
    const text = `{"params":[${spaced},{"$blob":"AA*A"},{"$blob":"AAAAA"},{"$blob":"A==="},{"$blob":"AAAA","x":1},"${PAD}"]}`;
    const parsed = (await parse(text)) as { params: unknown[] };
    expect(parsed).toEqual(JSON.parse(text));
    expect(decodeValue(parsed.params[0])).toEqual(Buffer.from('spaced'));
    for (const bad of parsed.params.slice(1, 5)) expect(() => decodeValue(bad)).toThrow(/\$blob|object value/);
  });

  it('refuses what fastify refuses', async () => {
    const blob = `{"$blob":"${Buffer.alloc(90 * 1024).toString('base64')}"}`;
    await expect(parse(`{"params":[${blob}`)).rejects.toMatchObject({ code: 'FST_ERR_CTP_INVALID_JSON_BODY' });
    await expect(parse(`{"__proto__":{"x":1},"params":[${blob}]}`)).rejects.toMatchObject({ code: 'FST_ERR_CTP_INVALID_JSON_BODY' });
    await expect(parse('')).rejects.toMatchObject({ code: 'FST_ERR_CTP_EMPTY_JSON_BODY' });
    // A raw control character is not JSON, with or without blobs around it.
    await expect(parse(`{"params":[${blob},"\u0001${PAD}"]}`)).rejects.toMatchObject({ code: 'FST_ERR_CTP_INVALID_JSON_BODY' });
  });
});
