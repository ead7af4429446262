/**
 * Who may run which PRAGMA (docs/SECURITY.md, "Statement guards"). Every pragma of the SQLite that
 * better-sqlite3 bundles is listed (test/integration/engine/statement-guards.test.ts checks the list
 * against `PRAGMA pragma_list`), so a new SQLite cannot slip in a pragma nobody judged.
 *
 * - `everyone`: any key that may run the statement at all (a read key still runs only what
 *   better-sqlite3 reports read-only, so `user_version = 7` needs a write key);
 * - `admin`: keys with the `admin` action on the database, and the root key;
 * - `never`: no key, because it would bypass the replicated log, reach a path outside the
 *   database's files, or change a connection that every client of the node shares.
 *
 * `read` is the pragma without a value (and its table-valued function `pragma_<name>(...)`, which
 * SQLite only offers for pragmas without side effects); `set` is the pragma with `= value` or
 * `(argument)`. For the introspection pragmas the argument is only an input (a table name).
 */
export type PragmaAccess = 'everyone' | 'admin' | 'never';

export interface PragmaRule {
  read: PragmaAccess;
  set: PragmaAccess;
}

const rule = (read: PragmaAccess, set: PragmaAccess): PragmaRule => ({ read, set });

/** Schema introspection and checks: read-only, the argument names a table or index. */
const INTROSPECTION = rule('everyone', 'everyone');
/** Harmless facts about the database or the build; a value would change something. */
const FACT = rule('everyone', 'never');
/**
 * Settings of a connection. Connections are shared by every client of a node (one writer, one
 * reader per database) and SQLite applies most of these while *preparing* the statement, so a
 * value would leak to other clients, differ between nodes, and vanish on restart: refused for all.
 * Reading them is harmless but tells nothing a tenant needs.
 */
const CONNECTION_SETTING = rule('admin', 'never');
/** Journaling, checkpointing, locking, durability, files: would bypass the log or leave the database. */
const FORBIDDEN = rule('never', 'never');

export const PRAGMA_RULES: ReadonlyMap<string, PragmaRule> = new Map<string, PragmaRule>([
  ['table_info', INTROSPECTION],
  ['table_xinfo', INTROSPECTION],
  ['table_list', INTROSPECTION],
  ['index_list', INTROSPECTION],
  ['index_info', INTROSPECTION],
  ['index_xinfo', INTROSPECTION],
  ['foreign_key_list', INTROSPECTION],
  ['foreign_key_check', INTROSPECTION],
  ['integrity_check', INTROSPECTION],
  ['quick_check', INTROSPECTION],

  ['collation_list', FACT],
  ['function_list', FACT],
  ['module_list', FACT],
  ['pragma_list', FACT],
  ['compile_options', FACT],
  ['schema_version', FACT], // setting it can corrupt the database (SQLite's own warning)
  ['data_version', FACT],
  ['page_count', FACT],
  ['page_size', FACT],
  ['freelist_count', FACT],
  ['max_page_count', FACT],
  ['encoding', FACT],
  ['auto_vacuum', FACT],
  ['foreign_keys', FACT],

  // Stored in the database header, so a change goes through the log like any write.
  ['user_version', rule('everyone', 'everyone')],
  ['application_id', rule('everyone', 'everyone')],
  // Cleared by SQLite at every COMMIT and ROLLBACK, and every write here ends with one.
  ['defer_foreign_keys', rule('everyone', 'everyone')],

  // The node's local file paths.
  ['database_list', rule('admin', 'never')],
  // Maintenance that writes through the log (or nothing, on a read connection).
  ['optimize', rule('admin', 'admin')],
  ['incremental_vacuum', rule('admin', 'admin')],
  ['shrink_memory', rule('admin', 'never')],

  ['analysis_limit', CONNECTION_SETTING],
  ['automatic_index', CONNECTION_SETTING],
  ['busy_timeout', CONNECTION_SETTING],
  ['cache_size', CONNECTION_SETTING],
  ['cache_spill', CONNECTION_SETTING],
  ['case_sensitive_like', CONNECTION_SETTING],
  ['cell_size_check', CONNECTION_SETTING],
  ['checkpoint_fullfsync', CONNECTION_SETTING],
  ['count_changes', CONNECTION_SETTING],
  ['empty_result_callbacks', CONNECTION_SETTING],
  ['full_column_names', CONNECTION_SETTING],
  ['fullfsync', CONNECTION_SETTING],
  ['ignore_check_constraints', CONNECTION_SETTING],
  ['legacy_alter_table', CONNECTION_SETTING],
  ['read_uncommitted', CONNECTION_SETTING],
  ['recursive_triggers', CONNECTION_SETTING],
  ['reverse_unordered_selects', CONNECTION_SETTING],
  ['secure_delete', CONNECTION_SETTING],
  ['short_column_names', CONNECTION_SETTING],
  ['temp_store', CONNECTION_SETTING],
  ['trusted_schema', CONNECTION_SETTING],
  // Process-wide, not even per connection.
  ['hard_heap_limit', CONNECTION_SETTING],
  ['soft_heap_limit', CONNECTION_SETTING],
  ['threads', CONNECTION_SETTING],

  ['journal_mode', FORBIDDEN],
  ['journal_size_limit', FORBIDDEN],
  ['locking_mode', FORBIDDEN],
  ['mmap_size', FORBIDDEN],
  ['query_only', FORBIDDEN],
  ['synchronous', FORBIDDEN],
  ['wal_autocheckpoint', FORBIDDEN],
  ['wal_checkpoint', FORBIDDEN], // without a value it checkpoints: WAL frames not yet in the log
  ['writable_schema', FORBIDDEN],
  ['temp_store_directory', FORBIDDEN], // a directory anywhere on the node
]);

/** SQLite ignores pragmas it does not know; only an admin may send one (it may know it one day). */
const UNKNOWN: PragmaRule = rule('admin', 'admin');

export function pragmaRule(name: string): PragmaRule {
  return PRAGMA_RULES.get(name) ?? UNKNOWN;
}
