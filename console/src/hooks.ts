import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.js';

/** Run `load` now and every `intervalMs` while mounted; its latest result or error. */
export function usePoll<T>(
  load: () => Promise<T>,
  intervalMs: number,
  deps: readonly unknown[] = [],
): { value: T | undefined; error: ApiError | null; reload: () => void } {
  const [value, setValue] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const run = async () => {
      try {
        const next = await loadRef.current();
        if (!stopped) {
          setValue(next);
          setError(null);
        }
      } catch (caught) {
        if (!stopped) setError(asApiError(caught));
      }
      if (!stopped && intervalMs > 0) timer = setTimeout(run, intervalMs);
    };
    void run();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [...deps, tick, intervalMs]);
  return { value, error, reload: () => setTick((n) => n + 1) };
}

export function asApiError(error: unknown): ApiError {
  return error instanceof ApiError ? error : new ApiError(0, 'CONSOLE_ERROR', error instanceof Error ? error.message : String(error));
}
