/**
 * Everything a benchmark starts (server processes, temp directories) registers here, so that it is
 * released on every way out: normal end, a thrown error, Ctrl-C, or SIGTERM from a CI runner.
 * A benchmark that leaves a server running would skew the next run on a 2-core machine.
 */

export interface Resource {
  /** Orderly release (SIGTERM and wait, then remove files). */
  release(): Promise<void>;
  /** Last-resort release that must be synchronous, for the process 'exit' event. */
  releaseNow(): void;
}

const resources = new Set<Resource>();
let installed = false;

/** Register a resource; the returned function unregisters it once it has been released normally. */
export function track(resource: Resource): () => void {
  installHandlers();
  resources.add(resource);
  return () => {
    resources.delete(resource);
  };
}

/** Release everything still registered, newest first (servers before the directories they use). */
export async function releaseAll(): Promise<void> {
  const pending = [...resources].reverse();
  resources.clear();
  for (const resource of pending) {
    try {
      await resource.release();
    } catch (error) {
      console.error(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`);
      resource.releaseNow();
    }
  }
}

function releaseAllNow(): void {
  for (const resource of [...resources].reverse()) {
    try {
      resource.releaseNow();
    } catch {
      // Nothing more can be done while the process is exiting.
    }
  }
  resources.clear();
}

function installHandlers(): void {
  if (installed) return;
  installed = true;
  // 'exit' handlers cannot wait, so this path kills with SIGKILL and removes directories synchronously.
  process.on('exit', releaseAllNow);
  let signalled = false;
  const onSignal = (signal: NodeJS.Signals, exitCode: number): void => {
    if (signalled) {
      // A second Ctrl-C means "now": skip the orderly shutdown.
      releaseAllNow();
      process.exit(exitCode);
    }
    signalled = true;
    console.error(`\n${signal}: stopping servers and removing temp directories...`);
    // Bounded, so a server that ignores SIGTERM cannot keep the benchmark alive.
    const timer = setTimeout(() => {
      releaseAllNow();
      process.exit(exitCode);
    }, 10_000);
    timer.unref();
    void releaseAll().finally(() => process.exit(exitCode));
  };
  process.on('SIGINT', () => onSignal('SIGINT', 130));
  process.on('SIGTERM', () => onSignal('SIGTERM', 143));
}
