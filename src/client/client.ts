import { LitebaseClient as PortableClient, type LitebaseClientOptions as PortableClientOptions } from './portable/index.js';
import { fetchTrustingCa } from './tls.js';

/**
 * The client as the CLI and Node programs in this repository use it: the portable client of the
 * `@litebase/client` package (src/client/portable, fetch and Web Crypto only), plus what only Node
 * can do: trusting a CA for https:// URLs (`ca`).
 */
export * from './portable/index.js';

export interface LitebaseClientOptions extends PortableClientOptions {
  /** PEM CA certificate(s) to trust for https:// URLs instead of the system CAs. Ignored with `fetch`. */
  ca?: string | Buffer;
}

export class LitebaseClient extends PortableClient {
  constructor(options: LitebaseClientOptions) {
    const { ca, ...portable } = options;
    // Streaming, so that backups arrive as they are read; JSON answers are read whole by the client.
    super(ca === undefined || portable.fetch !== undefined ? portable : { ...portable, fetch: fetchTrustingCa(ca, { stream: true }) });
  }
}
