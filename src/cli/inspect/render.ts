import { plural } from '../output.js';
import {
  isoTime,
  type BundleReport,
  type BundleSegmentReport,
  type CheckpointReport,
  type ContainerReport,
  type HeaderReport,
  type InspectReport,
  type Problem,
  type TermLogReport,
} from './report.js';

/** The text output of `litebase inspect`: a dump of what the report holds, then the verdict. */
export function renderReport(report: InspectReport): string {
  const lines = [`${report.kind} ${report.file} (${plural(report.bytes, 'byte')})`];
  if (report.segment) lines.push(...renderContainer(report.segment));
  if (report.checkpoint) lines.push(...renderContainer(report.checkpoint), ...renderChecksum(report.checkpoint));
  if (report.bundle) lines.push(...renderBundle(report.bundle));
  if (report.termLog) lines.push(...renderTermLog(report.termLog));
  lines.push(report.valid ? `valid ${report.kind}` : `invalid ${report.kind}`);
  return lines.join('\n');
}

/**
 * Why a file is invalid (the CLI prints it as `error CODE: ...` on stderr): the first check that
 * failed, and where the damage is when checking piece by piece found it.
 */
export function describeProblem(report: InspectReport): string {
  const problem = report.problem as Problem;
  const located = report.located;
  if (!located) return problem.message;
  const found = 'note' in located ? located.note : `${located.code}: ${located.message}`;
  return `${problem.message}\n  checked piece by piece: ${found}`;
}

function renderHeader(header: HeaderReport): string[] {
  return [
    'header',
    `  format version   ${header.formatVersion}`,
    `  database id      ${header.databaseId}`,
    `  term             ${header.term}`,
    `  position         ${header.position}`,
    `  commit time      ${header.commitTime ?? '(beyond dates)'} (${header.commitTimeMs} ms)`,
    `  page size        ${header.pageSize}`,
    `  database size    ${plural(header.databaseSizePages, 'page')}`,
    `  page count       ${header.pageCount}`,
    `  transactions     ${header.transactionCount}`,
    `  pre-checksum     ${header.preChecksum}`,
    `  post-checksum    ${header.postChecksum}`,
  ];
}

function renderContainer(container: ContainerReport): string[] {
  const lines = container.header ? renderHeader(container.header) : ['header           (does not decode: see the error)'];
  if (container.chunks.length > 0) {
    lines.push(`chunks (${container.chunks.length})`);
    lines.push(
      indent(
        renderTable(
          ['chunk', 'offset', 'pages', 'first..last', 'raw bytes', 'compressed'],
          container.chunks.map((chunk) =>
            [
              chunk.index,
              chunk.offset,
              chunk.pagesInChunk,
              `${chunk.firstPage}..${chunk.lastPage}`,
              chunk.uncompressedLength,
              chunk.compressedLength,
            ].map(String),
          ),
        ),
      ),
    );
  }
  const range = container.firstPage === undefined ? '' : ` (${container.firstPage}..${container.lastPage})`;
  lines.push(`pages verified   ${container.pagesVerified}${range}`);
  if (container.pages) {
    lines.push(
      indent(
        renderTable(
          ['page', 'chunk', 'page hash'],
          container.pages.map((page) => [String(page.pageNumber), String(page.chunk), page.pageHash]),
        ),
      ),
    );
  }
  if (container.trailer !== undefined) lines.push(`trailer          ${container.trailer}`);
  return lines;
}

function renderChecksum(checkpoint: CheckpointReport): string[] {
  return checkpoint.checksum === undefined ? [] : [`pages sum to     ${checkpoint.checksum}`];
}

function renderTermLog(termLog: TermLogReport): string[] {
  const lines: string[] = [];
  if (termLog.databaseId !== undefined) {
    lines.push(
      `database id      ${termLog.databaseId}`,
      `term             ${termLog.term}`,
      `first position   ${termLog.firstPosition} (pre-checksum ${termLog.preChecksum})`,
      `created          ${isoTime(termLog.createdAtMs ?? 0) ?? String(termLog.createdAtMs)}`,
      `records          ${plural(termLog.segments.length, 'segment')}`,
    );
  }
  if (termLog.segments.length > 0) lines.push('segments', indent(segmentTable(termLog.segments, true)));
  lines.push(`images verified  ${termLog.imagesVerified}`);
  if (termLog.tailBytes > 0)
    lines.push(`tail             ${plural(termLog.tailBytes, 'byte')} after the last complete record (being written, or cut short)`);
  return lines;
}

function segmentTable(segments: readonly BundleSegmentReport[], withRecords: boolean): string {
  return renderTable(
    [
      'position',
      'term',
      'commit time',
      'db pages',
      'pages',
      'txns',
      'pre-checksum',
      'post-checksum',
      ...(withRecords ? ['offset', 'bytes'] : []),
    ],
    segments.map((s) => [
      s.position,
      s.term,
      s.commitTime ?? String(s.commitTimeMs),
      String(s.databaseSizePages),
      String(s.pageCount),
      String(s.transactionCount),
      s.preChecksum,
      s.postChecksum,
      ...(withRecords ? [String(s.offset), String(s.bytes)] : []),
    ]),
  );
}

function renderBundle(bundle: BundleReport): string[] {
  const lines = [`format           ${bundle.format}`];
  if (bundle.databaseId !== undefined) {
    lines.push(
      `database id      ${bundle.databaseId}`,
      `positions        ${bundle.firstPosition}..${bundle.lastPosition} (${plural(bundle.segments.length, 'segment')})`,
      `page size        ${bundle.pageSize}`,
    );
  }
  if (bundle.tables) {
    const { tables } = bundle;
    lines.push(
      `pages            ${tables.pages} (newest images in ${plural(tables.blocks, 'block')}), ${plural(tables.olderImages, 'older image')}`,
      `data starts at   ${tables.dataStart} (older images at ${tables.historyStart})`,
      `tables checksum  ${tables.tablesChecksum}`,
      `trailer          ${tables.trailer}`,
    );
  }
  if (bundle.segments.length > 0) lines.push('segments', indent(segmentTable(bundle.segments, bundle.format === 1)));
  if (bundle.blocks && bundle.blocks.length > 0) {
    lines.push('blocks');
    lines.push(
      indent(
        renderTable(
          ['block', 'offset', 'compressed', 'pages', 'crc-32'],
          bundle.blocks.map((b) => [b.index, b.offset, b.compressedLength, b.pages, b.crc32].map(String)),
        ),
      ),
    );
  }
  lines.push(`images verified  ${bundle.imagesVerified}`);
  if (bundle.images) {
    const detailed = bundle.format === 2;
    lines.push(
      indent(
        renderTable(
          ['position', 'page', 'page hash', ...(detailed ? ['image', 'offset', 'compressed', 'crc-32'] : [])],
          bundle.images.map((image) => [
            image.position,
            String(image.pageNumber),
            image.pageHash,
            ...(detailed
              ? [image.newest ? 'newest' : 'older', String(image.offset), String(image.compressedLength), image.crc32 ?? '']
              : []),
          ]),
        ),
      ),
    );
  }
  return lines;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}

/**
 * Columns padded to their widest cell, without borders: a bundle lists thousands of segments and
 * images, and cli-table3 (the query output's tables) took 14 s for 5,000 rows.
 */
function renderTable(head: readonly string[], rows: readonly string[][]): string {
  const widths = head.map((title, column) => rows.reduce((widest, row) => Math.max(widest, (row[column] ?? '').length), title.length));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) => cell.padEnd(widths[column] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(head), ...rows.map(line)].join('\n');
}
