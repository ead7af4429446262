import type { FastifyReply, FastifyRequest } from 'fastify';
import type { LeaseView } from '../cluster/cluster-member.js';
import { LitebaseError, systemErrorCode } from '../errors.js';
import { forwardedSignature } from './request-signing.js';
import type { ClusterView } from './context.js';

const FORWARDED_HEADER = 'x-litebase-forwarded-by';

/** Connection failures that happen before the request leaves this node. */
const NEVER_SENT_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

const primaryUnavailable = (message: string, cause?: unknown): LitebaseError =>
  new LitebaseError('PRIMARY_UNAVAILABLE', message, { cause });

/**
 * Send a request that must run on the Primary there, and answer with the Primary's answer
 * (docs/ARCHITECTURE.md §7): the client sees one answer, whichever node it asked. A request is forwarded at
 * most once, so two nodes that each think the other is Primary answer 503 instead of looping.
 */
export async function forwardToPrimary(
  request: FastifyRequest,
  reply: FastifyReply,
  cluster: ClusterView,
  timeoutMs: number,
): Promise<FastifyReply> {
  if (request.headers[FORWARDED_HEADER]) {
    throw primaryUnavailable(`node ${cluster.nodeId} is not the Primary either; the cluster is electing one`);
  }
  const primary = cluster.primaryAddress();
  if (!primary) throw primaryUnavailable('no Primary is known right now; the cluster is electing one');
  const headers: Record<string, string> = { [FORWARDED_HEADER]: cluster.nodeId };
  if (request.headers.authorization) headers.authorization = request.headers.authorization;
  // A signed request goes on with its signature and its exact body bytes: the Primary checks the
  // client's own signature (docs/SECURITY.md), so no node needs a credential of its own.
  const signed = forwardedSignature(request);
  const hasBody = request.body !== undefined && request.body !== null;
  if (signed) Object.assign(headers, signed.headers);
  else if (hasBody) headers['content-type'] = 'application/json';
  const payload = signed ? signed.body : hasBody ? JSON.stringify(request.body) : undefined;
  // A Primary that stops answering (paused, cut off) is replaced after its lease; the request is
  // given up then, not after the full timeout. Its outcome is unknown: it may have committed.
  const primaryChanged = new AbortController();
  const onLease = (lease: LeaseView) => {
    if (lease.primaryAddress !== primary) primaryChanged.abort();
  };
  cluster.member.on('lease', onLease);
  let response: Response;
  try {
    response = await (cluster.fetch ?? fetch)(new URL(request.url, primary), {
      method: request.method,
      headers,
      ...(payload !== undefined ? { body: payload } : {}),
      signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), primaryChanged.signal]),
    });
  } catch (error) {
    if (primaryChanged.signal.aborted) {
      throw new LitebaseError(
        'PRIMARY_CHANGED',
        `the Primary changed while this request was with it at ${primary}; a write may or may not have been applied`,
        { cause: error },
      );
    }
    // fetch says only "fetch failed"; the reason (refused, reset, a certificate that does not
    // verify against --tls-ca) is in its cause, and is what an operator needs to see.
    const cause = (error as Error).cause;
    const reason = cause instanceof Error ? `${(error as Error).message}: ${cause.message}` : (error as Error).message;
    // Refused or not resolved: the request never left this node, so the client may send it again.
    // Anything else (a timeout, a reset) may have reached the Primary: a write's outcome is unknown.
    // A certificate that does not verify fails the TLS handshake, before any byte of the request.
    const causeCode = systemErrorCode(cause) ?? '';
    const neverSent = NEVER_SENT_CODES.has(causeCode) || /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|^ERR_TLS_/.test(causeCode);
    if (neverSent || request.method === 'GET' || request.method === 'HEAD') {
      throw primaryUnavailable(`the Primary at ${primary} could not be reached: ${reason}`, error);
    }
    throw new LitebaseError(
      'PRIMARY_NO_ANSWER',
      `the Primary at ${primary} did not answer: ${reason}; a write may or may not have been applied`,
      { cause: error },
    );
  } finally {
    cluster.member.off('lease', onLease);
  }
  const body = Buffer.from(await response.arrayBuffer());
  const retryAfter = response.headers.get('retry-after');
  if (retryAfter) void reply.header('retry-after', retryAfter);
  const position = response.headers.get('x-litebase-position');
  if (position) void reply.header('x-litebase-position', position);
  const contentType = response.headers.get('content-type');
  if (contentType) void reply.header('content-type', contentType);
  return reply.status(response.status).send(response.status === 204 ? undefined : body);
}
