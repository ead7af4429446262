/*
 * malloc-tuning: a SQLite extension through which `litebase serve` fixes glibc's mmap threshold.
 *
 * Why it exists: glibc serves allocations from 128 KiB up with mmap and, by default, raises that
 * threshold to the size of each such block freed (up to 32 MiB). After a few large request bodies
 * have come and gone, blocks of megabytes come from the heap, and freed ones stay resident there:
 * a node loading with ~10 MiB requests kept tens of MiB more than it used (bench/README.md,
 * "memory"). A fixed threshold (mallopt(M_MMAP_THRESHOLD), what the environment variable
 * MALLOC_MMAP_THRESHOLD_ sets at start-up) gives large blocks back to the system when freed.
 * glibc reads that variable only when the process starts, so the server sets the same through
 * mallopt, which may be called at any time, from this library: it is built like the
 * statement-deadline extension (a C compiler and sqlite3ext.h, nothing else) and loaded into a
 * throwaway in-memory connection.
 *
 * SQL interface:
 *
 *   litebase_mmap_threshold(bytes)   returns 1 once set, 0 when mallopt refused it, -1 when the
 *                                    C library is not glibc (nothing to do)
 *   litebase_malloc_trim()           gives the free memory inside glibc's heaps back to the system
 *                                    (malloc_trim(0)): returns 1 when some was released, 0 when
 *                                    none, -1 when the C library is not glibc
 *
 * Built by infra/build-native.mjs against the sqlite3ext.h better-sqlite3 ships.
 */
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static void thresholdFunction(sqlite3_context *context, int argc, sqlite3_value **argv) {
  (void)argc;
  sqlite3_int64 bytes = sqlite3_value_int64(argv[0]);
#if defined(__GLIBC__)
  if (bytes < 0 || bytes > 32 * 1024 * 1024) {
    sqlite3_result_int(context, 0);
    return;
  }
  sqlite3_result_int(context, mallopt(M_MMAP_THRESHOLD, (int)bytes) == 1 ? 1 : 0);
#else
  (void)bytes;
  sqlite3_result_int(context, -1);
#endif
}

static void trimFunction(sqlite3_context *context, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
#if defined(__GLIBC__)
  sqlite3_result_int(context, malloc_trim(0));
#else
  sqlite3_result_int(context, -1);
#endif
}

#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_extension_init(sqlite3 *db, char **errorMessage, const sqlite3_api_routines *api) {
  SQLITE_EXTENSION_INIT2(api);
  int rc = sqlite3_create_function_v2(db, "litebase_mmap_threshold", 1, SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL, thresholdFunction,
                                      NULL, NULL, NULL);
  if (rc == SQLITE_OK)
    rc = sqlite3_create_function_v2(db, "litebase_malloc_trim", 0, SQLITE_UTF8 | SQLITE_DIRECTONLY, NULL, trimFunction, NULL, NULL, NULL);
  if (rc != SQLITE_OK && errorMessage != NULL) *errorMessage = sqlite3_mprintf("the malloc-tuning functions could not be registered");
  return rc;
}
