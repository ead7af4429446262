import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';

/**
 * The web console (docs/CONSOLE.md): static files built into `dist/console/` at install time
 * (infra/build-console.mjs, run by `prepare`/`build`), served at /console/ without a key. They are
 * the same for everyone and reveal nothing; the page asks for an access key and sends it with
 * every API call, so the server checks permissions as for any client.
 */
export const CONSOLE_PREFIX = '/console';

/** Paths the auth hook lets through without a key: the console's own files. */
export function isConsolePath(url: string): boolean {
  const pathname = url.split('?')[0] ?? '';
  return pathname === CONSOLE_PREFIX || pathname.startsWith(`${CONSOLE_PREFIX}/`);
}

/**
 * The page may load code, styles and images from this node alone and talk to this node alone:
 * nothing from a CDN. uPlot sizes its canvas with style attributes, hence 'unsafe-inline' for styles.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

/** The repository (or installed package) root: the nearest folder above this file with a package.json. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('litebase: no package.json above src/server/console');
    dir = parent;
  }
  return dir;
}

export function consoleDir(): string {
  return path.join(packageRoot(), 'dist', 'console');
}

export function consoleRoutes(root = consoleDir()): FastifyPluginAsync {
  return async (app) => {
    if (!existsSync(path.join(root, 'index.html'))) {
      // Installed without its build step (npm ci --ignore-scripts): say so instead of a bare 404.
      const notBuilt = async (_request: unknown, reply: import('fastify').FastifyReply) =>
        reply.status(503).send({ error: { code: 'CONSOLE_NOT_BUILT', message: 'the web console was not built; run npm run build' } });
      app.get(CONSOLE_PREFIX, notBuilt);
      app.get(`${CONSOLE_PREFIX}/*`, notBuilt);
      return;
    }
    await app.register(fastifyStatic, {
      root,
      prefix: `${CONSOLE_PREFIX}/`,
      index: ['index.html'],
      // File names carry no content hash: the browser asks again each time (a 304 when unchanged).
      cacheControl: false,
      setHeaders: (reply) => {
        void reply.headers({
          'cache-control': 'no-cache',
          'content-security-policy': CONTENT_SECURITY_POLICY,
          'x-content-type-options': 'nosniff',
          'referrer-policy': 'no-referrer',
        });
      },
    });
    // GET /console answers with a redirect to /console/, so the page's relative asset URLs resolve.
    app.get(CONSOLE_PREFIX, async (_request, reply) => reply.redirect(`${CONSOLE_PREFIX}/`));
  };
}
