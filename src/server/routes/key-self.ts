import type { FastifyPluginAsync } from 'fastify';
import { ACTIONS, type Action, type Principal } from '../access-keys.js';
import type { AppContext } from '../context.js';

/** What GET /v1/keys/self answers: who the caller is and what its key may do. */
export interface KeySelfAnswer {
  key: {
    id: string;
    /** The key's name; "root" for the root key. */
    name: string;
    root: boolean;
    /** Database names or patterns the key covers ("*" for the root key). */
    databases: string[];
    actions: Action[];
  };
  /** Actions on no particular database (cluster status, metrics, key management, creating any database). */
  global: Action[];
  /** For each existing database the key may do anything on: the actions it may do there. */
  perDatabase: Record<string, Action[]>;
}

const actionsOn = (principal: Principal, database?: string): Action[] => ACTIONS.filter((action) => principal.can(action, database));

/**
 * GET /v1/keys/self: the caller's own key and its permissions (docs/CONSOLE.md). Any valid key
 * may ask; the answer names only databases that key may already see, and never a secret or hash.
 * The web console uses it to disable the controls a key may not use; the server still checks
 * every request itself.
 */
export function keySelfRoutes(context: AppContext): FastifyPluginAsync {
  return async (app) => {
    app.get('/v1/keys/self', async (request): Promise<KeySelfAnswer> => {
      const principal = request.principal;
      // The auth hook sets a principal for every non-public route; this guards the type only.
      if (!principal) throw new Error('no principal on an authenticated route');
      const record = principal.keyId === 'root' ? undefined : await context.keys.liveRecord(principal.keyId);
      const perDatabase: Record<string, Action[]> = {};
      for (const database of await context.databases.list()) {
        const actions = actionsOn(principal, database.name);
        if (actions.length > 0) perDatabase[database.name] = actions;
      }
      return {
        key: record
          ? { id: record.id, name: record.name, root: false, databases: record.databases, actions: record.actions }
          : { id: principal.keyId, name: 'root', root: true, databases: ['*'], actions: [...ACTIONS] },
        global: actionsOn(principal),
        perDatabase,
      };
    });
  };
}
