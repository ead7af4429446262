/*
 * statement-deadline: a SQLite extension that stops a statement running past a deadline.
 *
 * Why it exists: better-sqlite3 runs statements synchronously on the calling thread and its
 * SQLite is built without the progress callback, so nothing on that thread can stop a statement
 * that loops (docs/ARCHITECTURE.md §10). SQLite's sqlite3_interrupt() is documented as safe to call from any
 * thread. This extension keeps one watcher thread per connection that sleeps until the armed
 * deadline and interrupts the connection if the deadline is still armed then. The running
 * statement fails with SQLITE_INTERRUPT; SQLite undoes a write statement it interrupts, and
 * inside an explicit transaction rolls the whole transaction back.
 *
 * SQL interface, one function:
 *
 *   litebase_deadline(key, ms)   ms > 0: arm the deadline ms milliseconds from now
 *                                ms <= 0: disarm it
 *
 * It returns how many times a deadline has fired on this connection. The first call sets the
 * connection's key (the server makes it right after loading the extension, before any client
 * SQL) and starts the watcher thread; a later call with another key fails, so a client's SQL
 * cannot disarm its own deadline. The function may not be used from triggers or views.
 *
 * Arming and disarming take a mutex and usually nothing more: the watcher is signalled only when
 * it sleeps without a deadline or a new deadline comes before the one it sleeps towards, so a
 * steady stream of statements costs no thread wake-ups.
 *
 * SQLite clears a pending interrupt when a statement starts while no other statement runs on
 * the connection, so a deadline that fires just after its statement ended cannot hit the next one.
 *
 * Built by infra/build-native.mjs against the sqlite3ext.h better-sqlite3 ships.
 */
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_MAX 64
#define WATCHER_STACK_BYTES (64 * 1024)

typedef struct Watch {
  sqlite3 *db;
  pthread_mutex_t mutex;
  pthread_cond_t wake;
  pthread_t thread;
  int threadStarted;
  int stopping;
  /* The watcher sleeps without a deadline (waits for a signal). */
  int idle;
  int armed;
  struct timespec deadline;
  /* The deadline the watcher sleeps towards, valid while it is not idle. */
  struct timespec sleepingUntil;
  sqlite3_int64 fired;
  int keyLength; /* -1 until the first call sets it */
  unsigned char key[KEY_MAX];
} Watch;

static int isBefore(const struct timespec *a, const struct timespec *b) {
  return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static struct timespec millisecondsFromNow(sqlite3_int64 ms) {
  struct timespec at;
  clock_gettime(CLOCK_MONOTONIC, &at);
  at.tv_sec += (time_t)(ms / 1000);
  at.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (at.tv_nsec >= 1000000000L) {
    at.tv_sec += 1;
    at.tv_nsec -= 1000000000L;
  }
  return at;
}

static void *watchDeadline(void *argument) {
  Watch *watch = (Watch *)argument;
  pthread_mutex_lock(&watch->mutex);
  while (!watch->stopping) {
    if (!watch->armed) {
      watch->idle = 1;
      pthread_cond_wait(&watch->wake, &watch->mutex);
      watch->idle = 0;
      continue;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (!isBefore(&now, &watch->deadline)) {
      watch->armed = 0;
      watch->fired += 1;
      sqlite3_interrupt(watch->db);
      continue;
    }
    watch->sleepingUntil = watch->deadline;
    pthread_cond_timedwait(&watch->wake, &watch->mutex, &watch->sleepingUntil);
  }
  pthread_mutex_unlock(&watch->mutex);
  return NULL;
}

static int startWatcher(Watch *watch) {
  pthread_attr_t attributes;
  if (pthread_attr_init(&attributes) != 0) return 0;
  pthread_attr_setstacksize(&attributes, WATCHER_STACK_BYTES);
  int started = pthread_create(&watch->thread, &attributes, watchDeadline, watch) == 0;
  pthread_attr_destroy(&attributes);
  watch->threadStarted = started;
  return started;
}

/* Called by SQLite when the connection closes (the function is dropped with it). */
static void destroyWatch(void *argument) {
  Watch *watch = (Watch *)argument;
  pthread_mutex_lock(&watch->mutex);
  watch->stopping = 1;
  pthread_cond_signal(&watch->wake);
  pthread_mutex_unlock(&watch->mutex);
  if (watch->threadStarted) pthread_join(watch->thread, NULL);
  pthread_cond_destroy(&watch->wake);
  pthread_mutex_destroy(&watch->mutex);
  sqlite3_free(watch);
}

static void deadlineFunction(sqlite3_context *context, int argc, sqlite3_value **argv) {
  Watch *watch = (Watch *)sqlite3_user_data(context);
  (void)argc;
  const unsigned char *key = (const unsigned char *)sqlite3_value_blob(argv[0]);
  int keyLength = sqlite3_value_bytes(argv[0]);
  sqlite3_int64 ms = sqlite3_value_int64(argv[1]);
  if (key == NULL || keyLength <= 0 || keyLength > KEY_MAX) {
    sqlite3_result_error(context, "litebase_deadline: the key must be 1 to 64 bytes", -1);
    return;
  }
  pthread_mutex_lock(&watch->mutex);
  if (watch->keyLength < 0) {
    if (!startWatcher(watch)) {
      pthread_mutex_unlock(&watch->mutex);
      sqlite3_result_error(context, "litebase_deadline: the watcher thread could not be started", -1);
      return;
    }
    memcpy(watch->key, key, (size_t)keyLength);
    watch->keyLength = keyLength;
  } else {
    /* Not secret against timing on this thread: the caller's SQL runs in this process anyway. */
    if (keyLength != watch->keyLength || memcmp(key, watch->key, (size_t)keyLength) != 0) {
      pthread_mutex_unlock(&watch->mutex);
      sqlite3_result_error(context, "litebase_deadline is internal to the server", -1);
      return;
    }
  }
  if (ms > 0) {
    watch->deadline = millisecondsFromNow(ms);
    watch->armed = 1;
    /* A watcher sleeping towards a later deadline wakes at it and sleeps on; no signal needed. */
    if (watch->idle || isBefore(&watch->deadline, &watch->sleepingUntil)) pthread_cond_signal(&watch->wake);
  } else {
    watch->armed = 0;
  }
  sqlite3_int64 fired = watch->fired;
  pthread_mutex_unlock(&watch->mutex);
  sqlite3_result_int64(context, fired);
}

#ifdef _WIN32
__declspec(dllexport)
#endif
int sqlite3_extension_init(sqlite3 *db, char **errorMessage, const sqlite3_api_routines *api) {
  SQLITE_EXTENSION_INIT2(api);
  Watch *watch = (Watch *)sqlite3_malloc(sizeof(Watch));
  if (watch == NULL) return SQLITE_NOMEM;
  memset(watch, 0, sizeof(Watch));
  watch->db = db;
  watch->keyLength = -1;
  pthread_condattr_t conditionAttributes;
  pthread_condattr_init(&conditionAttributes);
  /* Deadlines are measured on the monotonic clock: a wall-clock step must not fire or delay them. */
  pthread_condattr_setclock(&conditionAttributes, CLOCK_MONOTONIC);
  pthread_cond_init(&watch->wake, &conditionAttributes);
  pthread_condattr_destroy(&conditionAttributes);
  pthread_mutex_init(&watch->mutex, NULL);
  int rc = sqlite3_create_function_v2(db, "litebase_deadline", 2, SQLITE_UTF8 | SQLITE_DIRECTONLY, watch, deadlineFunction,
                                      NULL, NULL, destroyWatch);
  if (rc != SQLITE_OK) {
    /* sqlite3_create_function_v2 calls destroyWatch itself when it fails. */
    if (errorMessage != NULL) *errorMessage = sqlite3_mprintf("litebase_deadline could not be registered");
    return rc;
  }
  return SQLITE_OK;
}
