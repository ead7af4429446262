// Durable single-row INSERTs per second with the data dir (the shared log) on a folder you name
// and the local dir on the local disk: one `litebase serve`, 64 keep-alive clients (autocannon),
// a warm-up, then a measured window. For comparing CephFS with a local folder side by side
// (docs/DEPLOY-CEPHFS.md); the project's benchmarks with goals are in bench/.
//
//   node infra/ceph/measure-writes.mjs DATA_PARENT [--connections 64] [--seconds 15] [--warmup 3] [--log-format segments|terms]
//
// Run `npm run build` first. Prints one JSON line: tx/s, latency percentiles, segments written,
// and the mean time per segment from litebase_segment_write_seconds.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';

const here = path.dirname(fileURLToPath(import.meta.url));
const cli = path.join(here, '..', '..', 'bin', 'litebase.js');
const [parent, ...rest] = process.argv.slice(2);
if (!parent) {
  console.error('usage: node infra/ceph/measure-writes.mjs DATA_PARENT [--connections N] [--seconds S] [--warmup S]');
  process.exit(2);
}
const option = (name, fallback) => {
  const index = rest.indexOf(`--${name}`);
  return index === -1 ? fallback : Number(rest[index + 1]);
};
const connections = option('connections', 64);
const seconds = option('seconds', 15);
const warmup = option('warmup', 3);
const logFormat = rest.includes('--log-format') ? rest[rest.indexOf('--log-format') + 1] : undefined;
const key = 'measure-writes-root-key-0123456789';

const port = await new Promise((resolve) => {
  const server = createServer().listen(0, '127.0.0.1', () => {
    const { port: chosen } = server.address();
    server.close(() => resolve(chosen));
  });
});
const dataDir = mkdtempSync(path.join(parent, 'litebase-measure-'));
const localDir = mkdtempSync(path.join(tmpdir(), 'litebase-measure-local-'));
const url = `http://127.0.0.1:${port}`;
const child = spawn(
  process.execPath,
  [
    cli,
    'serve',
    '--data-dir',
    dataDir,
    '--local-dir',
    localDir,
    '--port',
    String(port),
    '--node-id',
    'm1',
    '--root-key',
    key,
    '--log-level',
    'warn',
    ...(logFormat ? ['--log-format', logFormat] : []),
  ],
  {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('LITEBASE_'))),
  },
);
const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
const call = async (method, route, body) => {
  const response = await fetch(url + route, { method, headers, ...(body ? { body: JSON.stringify(body) } : {}) });
  return { status: response.status, text: await response.text() };
};
try {
  for (let i = 0; ; i++) {
    if ((await call('GET', '/readyz').catch(() => ({ status: 0 }))).status === 200) break;
    if (i > 600) throw new Error('the server did not get ready');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await call('POST', '/v1/databases', { name: 'bench' });
  await call('POST', '/v1/databases/bench/query', { statements: [{ sql: 'CREATE TABLE t(id INTEGER PRIMARY KEY, payload TEXT)' }] });
  const body = JSON.stringify({
    statements: [{ sql: 'INSERT INTO t(payload) VALUES (?)', params: ['litebase-bench-payload-'.padEnd(100, 'x')] }],
  });
  const load = (duration) => autocannon({ url: `${url}/v1/databases/bench/query`, method: 'POST', headers, body, connections, duration });
  await load(warmup);
  const before = await segmentStats();
  const result = await load(seconds);
  const after = await segmentStats();
  const segments = after.count - before.count;
  console.log(
    JSON.stringify({
      data_dir_parent: parent,
      log_format: logFormat ?? 'default',
      connections,
      seconds,
      tx_per_s: Math.round(result.requests.average),
      non_2xx: result.non2xx,
      errors: result.errors,
      p50_ms: result.latency.p50,
      p99_ms: result.latency.p99,
      segments,
      tx_per_segment: segments > 0 ? Math.round((result.requests.total / segments) * 10) / 10 : null,
      ms_per_segment: segments > 0 ? Math.round(((after.sum - before.sum) / segments) * 10000) / 10 : null,
    }),
  );
} finally {
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(localDir, { recursive: true, force: true });
}

async function segmentStats() {
  const { text } = await call('GET', '/metrics');
  const value = (name) =>
    Number(
      /^(\S+) (\S+)$/m.exec(
        text
          .split('\n')
          .filter((line) => line.startsWith(name))
          .join('\n'),
      )?.[2] ?? 0,
    );
  return { count: value('litebase_segment_write_seconds_count'), sum: value('litebase_segment_write_seconds_sum') };
}
