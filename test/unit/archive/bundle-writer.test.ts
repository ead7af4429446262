import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BundleWriter } from '../../../src/archive/bundle-writer.js';
import { SegmentFormatError, type PageImage } from '../../../src/format/segment-codec.js';
import { SegmentFileReader } from '../../../src/log/segment-stream.js';
import { history, writeBundle, type ModelSegment } from '../../support/bundle-history.js';

/**
 * The bundle writer given segments chunk by chunk (what the compactor does with a segment too large
 * to read whole): the bundle is byte for byte the one it writes from whole segments, and a segment
 * whose chunks fail halfway leaves the bundle holding exactly the segments before it.
 */

const work = mkdtempSync(path.join(tmpdir(), 'litebase-bundle-writer-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let files = 0;
const fileFor = (name: string): string => path.join(work, `${name}-${++files}`);

/** Append `segment` through the streaming reader of a file holding it, as the compactor does. */
async function appendStreamed(writer: BundleWriter, segment: ModelSegment): Promise<void> {
  const file = fileFor('segment');
  writeFileSync(file, segment.bytes);
  const reader = await SegmentFileReader.open(file);
  try {
    await writer.appendChunks(reader.header, reader.size, reader.chunks());
  } finally {
    await reader.close();
  }
}

describe('BundleWriter.appendChunks', () => {
  const segments = history(1414, 40);

  it('writes the same bundle as whole segments do', async () => {
    const whole = fileFor('whole');
    await writeBundle(whole, segments);
    const streamed = fileFor('streamed');
    const writer = await BundleWriter.create(streamed);
    // Whole and streamed segments mixed, as a compactor meets them.
    for (const [i, segment] of segments.entries()) {
      if (i % 3 === 0) writer.append(segment.bytes);
      else await appendStreamed(writer, segment);
    }
    expect(writer.bytes).toBe(segments.reduce((sum, segment) => sum + 4 + segment.bytes.length, 0));
    await writer.finish();
    expect(readFileSync(streamed).equals(readFileSync(whole))).toBe(true);
  });

  it('takes back the pages of a segment whose chunks fail, and holds the segments before it', async () => {
    const damaged = segments.find((segment, i) => i >= 20 && segment.pages.length >= 2) as ModelSegment;
    const index = segments.indexOf(damaged);
    const file = fileFor('partial');
    const writer = await BundleWriter.create(file);
    for (const segment of segments.slice(0, index)) writer.append(segment.bytes);
    const damagedFile = fileFor('damaged');
    writeFileSync(damagedFile, damaged.bytes);
    const reader = await SegmentFileReader.open(damagedFile);
    const { header } = reader;
    await reader.close();
    async function* failing(): AsyncGenerator<readonly PageImage[]> {
      yield damaged.pages.slice(0, 1);
      throw new SegmentFormatError('SEGMENT_CORRUPT', 'chunk 1 is damaged');
    }
    await expect(writer.appendChunks(header, damaged.bytes.length, failing())).rejects.toThrow('chunk 1 is damaged');
    expect(writer.segmentCount).toBe(index);
    expect(writer.bytes).toBe(segments.slice(0, index).reduce((sum, segment) => sum + 4 + segment.bytes.length, 0));
    // The same segment, whole this time, then the next one: the bundle is as if nothing had failed.
    writer.append(damaged.bytes);
    await appendStreamed(writer, segments[index + 1] as ModelSegment);
    await writer.finish();
    const expected = fileFor('expected');
    await writeBundle(expected, segments.slice(0, index + 2));
    expect(readFileSync(file).equals(readFileSync(expected))).toBe(true);
  });

  it('refuses a segment that does not follow the last one', async () => {
    const writer = await BundleWriter.create(fileFor('gap'));
    writer.append((segments[0] as ModelSegment).bytes);
    await expect(appendStreamed(writer, segments[2] as ModelSegment)).rejects.toThrow(/cannot follow/);
    await writer.abort();
  });
});
