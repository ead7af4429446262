// Builds the web console (console/) into dist/console/: one ES module bundle (Preact, uPlot and
// the pages), one stylesheet and index.html. Run by `npm run build`, `prepare` and `npm test`,
// after `tsc -p console/tsconfig.json` has type-checked the sources. Nothing is fetched at run
// time: the node serves these files itself (src/server/console.ts).
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outdir = path.join(root, 'dist', 'console');

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
await build({
  entryPoints: { app: path.join(root, 'console', 'src', 'main.tsx') },
  outdir,
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  sourcemap: true,
  legalComments: 'linked',
  logLevel: 'warning',
});
await copyFile(path.join(root, 'console', 'index.html'), path.join(outdir, 'index.html'));
