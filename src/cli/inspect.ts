import { Option, type Command } from 'commander';
import { LitebaseError } from '../errors.js';
import type { CliIo } from './common.js';
import { INSPECT_KINDS, type InspectKind } from './inspect/report.js';

/**
 * `litebase inspect FILE`: print and verify a segment, checkpoint or archive bundle, offline (the
 * way `ltx dump` and `ltx verify` do for LTX files). Exit code 0 when the file is valid, 1 with the
 * reason on stderr when it is damaged, 2 when it cannot be read or is none of the three.
 */
export function registerInspectCommand(program: Command, io: CliIo): void {
  program
    .command('inspect')
    .description('print and verify a log segment, checkpoint or archive bundle file (offline)')
    .argument('<file>', 'a .seg segment, a .ckpt checkpoint or an archive bundle')
    .addOption(new Option('--kind <kind>', 'what the file is, instead of telling it from its first bytes').choices(INSPECT_KINDS))
    .option('--pages', 'list every page (and, in a bundle, every image)')
    .option('--json', 'print the report as one line of JSON')
    .action(async (file: string, options: { kind?: InspectKind; pages?: boolean; json?: boolean }) => {
      // Loaded here, not with the command line: every other command starts without them.
      const [{ inspectFile }, { describeProblem, renderReport }] = await Promise.all([
        import('./inspect/inspect-file.js'),
        import('./inspect/render.js'),
      ]);
      const report = await inspectFile(file, { pages: options.pages === true, ...(options.kind ? { kind: options.kind } : {}) });
      io.out(options.json ? JSON.stringify(report) : renderReport(report));
      // main prints it as `error CODE: ...` and exits with 1.
      if (report.problem) throw new LitebaseError(report.problem.code, describeProblem(report));
    });
}
