import type { Action, KeySelf } from './types.js';

/** What the signed-in key may do, from GET /v1/keys/self. The server checks again on every call. */
export class Permissions {
  constructor(readonly self: KeySelf) {}

  /** An action on no particular database: cluster status, metrics, key management. */
  global(action: Action): boolean {
    return this.self.global.includes(action);
  }

  on(database: string, action: Action): boolean {
    return this.self.perDatabase[database]?.includes(action) ?? false;
  }

  /** Whether the key may create some database (admin on a name or pattern). */
  mayCreateDatabases(): boolean {
    return this.self.key.actions.includes('admin');
  }

  databasesWith(action: Action): string[] {
    return Object.entries(this.self.perDatabase)
      .filter(([, actions]) => actions.includes(action))
      .map(([name]) => name)
      .sort();
  }
}

/** The tooltip on a control the key may not use. */
export const needs = (action: Action, database?: string): string =>
  `this key may not ${action}${database === undefined ? '' : ` on ${database}`}`;
