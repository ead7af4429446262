import { randomUUID } from 'node:crypto';
import { promises as fs } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { removeBackupFile } from '../../engine/backup.js';
import { errorMessage, LitebaseError } from '../../errors.js';
import { requirePermission, type AppContext } from '../context.js';
import { DatabaseParams } from '../schemas.js';

const BackupQuery = Type.Object({ minPosition: Type.Optional(Type.String({ pattern: '^[0-9]{1,20}$' })) }, { additionalProperties: false });

/**
 * GET /v1/databases/:db/backup[?minPosition=N]: the database as one SQLite file, exactly as of
 * the position in `x-litebase-position` (docs/API.md "GET /v1/databases/:db/backup"). Any node answers from its own local copy; a
 * Replica waits for `minPosition` first, as reads do.
 *
 * The engine writes the copy into `<localDir>/backups` (src/engine/backup.ts), never into memory;
 * the file is unlinked as soon as it is open, so its space goes back when the download ends or the
 * client goes away, and a node that stops mid-backup leaves only what the next start clears.
 */
export function backupRoutes(context: AppContext): FastifyPluginAsync {
  const { databases, local } = context;
  const dir = local.backupsDir;

  return async (plugin) => {
    // Left by a node that stopped while writing a backup: nothing else uses the folder.
    await fs.rm(dir, { recursive: true, force: true });
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.get(
      '/v1/databases/:db/backup',
      // A HEAD would write the whole copy only to throw it away.
      { schema: { params: DatabaseParams, querystring: BackupQuery }, exposeHeadRoute: false },
      async (request, reply) => {
        const name = request.params.db;
        requirePermission(request, 'read', name);
        const database = await databases.get(name);
        const { minPosition } = request.query;
        if (minPosition !== undefined) await database.waitForPosition(BigInt(minPosition));

        // A client that goes away while the copy is written stops it (on the Primary, at its next step).
        const gone = new AbortController();
        const onClose = () => {
          if (!reply.raw.writableFinished) gone.abort();
        };
        reply.raw.once('close', onClose);

        await fs.mkdir(dir, { recursive: true });
        const file = path.join(dir, `${name}-${randomUUID()}.sqlite`);
        let handle: FileHandle | undefined;
        let position: bigint;
        let size: number;
        try {
          ({ position } = await database.backupTo(file, gone.signal));
          handle = await fs.open(file, 'r');
          size = (await handle.stat()).size;
        } catch (error) {
          await handle?.close();
          if (error instanceof LitebaseError) throw error;
          // SQLITE_FULL, ENOSPC, EIO: this node could not write the copy; another node may.
          throw new LitebaseError('BACKUP_FAILED', `the backup of ${name} could not be written on this node: ${errorMessage(error)}`, {
            cause: error,
          });
        } finally {
          reply.raw.off('close', onClose);
          await removeBackupFile(file);
        }
        return reply
          .header('content-type', 'application/vnd.sqlite3')
          .header('content-length', String(size))
          .header('content-disposition', `attachment; filename="${name}.sqlite"`)
          .header('x-litebase-position', position.toString())
          .header('cache-control', 'no-store')
          .send(handle.createReadStream());
      },
    );
  };
}
