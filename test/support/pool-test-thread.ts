/**
 * A thread for the tests of src/threads/worker-pool.ts: tells which thread answered and in what
 * order, and throws when asked to (an uncaught error, as a bug in a real thread would be).
 */
import { parentPort, threadId } from 'node:worker_threads';

export type TestRequest = { id: number; kind: 'who' } | { id: number; kind: 'throw'; message: string };

export interface TestReply {
  id: number;
  threadId: number;
  /** How many requests this thread had answered before this one. */
  answered: number;
}

let answered = 0;

function fail(message: string): never {
  throw new Error(message);
}

parentPort?.on('message', (request: TestRequest) => {
  if (request.kind === 'throw') fail(request.message);
  parentPort?.postMessage({ id: request.id, threadId, answered: answered++ } satisfies TestReply);
});
