import type { Command } from 'commander';
import type { CompactionReport } from '../compactor/compactor.js';
import { connect, withConnectionOptions, type CliIo, type ConnectionOptions } from './common.js';
import { plural } from './output.js';

/** `litebase compact NAME`: checkpoint and archive now (the Primary does it; any node forwards). */
export function registerCompactCommand(program: Command, io: CliIo): void {
  withConnectionOptions(
    program
      .command('compact')
      .description('write a checkpoint, archive the log to the object store and trim the shared log now')
      .argument('<name>', 'database name')
      .option('--json', "print the server's JSON answer on one line"),
  ).action(async (name: string, options: ConnectionOptions & { json?: boolean }) => {
    // A compaction reads the whole database: no client-side time limit.
    const client = connect(options, { timeoutMs: 0 });
    const answer = await client.json<{ compaction: CompactionReport }>('POST', `/v1/databases/${encodeURIComponent(name)}/compact`);
    if (options.json) return io.out(JSON.stringify(answer));
    io.out(describeCompaction(answer.compaction));
  });
}

export function describeCompaction(report: CompactionReport): string {
  const lines = [`compacted ${report.database} at position ${report.position} in ${(report.durationMs / 1000).toFixed(1)} s`];
  if (report.checkpoint) {
    lines.push(
      `  checkpoint ${report.checkpoint.position} (${report.checkpoint.created ? 'new' : 'existing'}, ${report.checkpoint.bytes} bytes): ${report.checkpoint.key}`,
    );
  }
  if (report.archived) {
    lines.push(
      `  archived segments ${report.archived.first}..${report.archived.last} (${plural(report.archived.segments, 'segment')}, ${report.archived.bytes} bytes) in ${plural(report.archived.objects.length, 'object')}`,
    );
  } else {
    lines.push('  no new segments to archive');
  }
  for (const key of report.checkpointsUploaded) lines.push(`  uploaded checkpoint ${key}`);
  if (report.deleted.deferred) lines.push('  deleting from the shared log deferred (a restore is reading it)');
  else if (report.deleted.segments > 0) {
    lines.push(
      `  deleted ${plural(report.deleted.segments, 'segment')} ${report.deleted.first}..${report.deleted.last} from the shared log`,
    );
  }
  if (report.pruned.objects.length > 0)
    lines.push(`  pruned ${plural(report.pruned.objects.length, 'object')} older than the retention window`);
  lines.push(`  archived through position ${report.archivedThrough}`);
  return lines.join('\n');
}
