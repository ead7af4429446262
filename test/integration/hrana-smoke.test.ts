import { createClient } from '@libsql/client';
import { afterAll, expect, it } from 'vitest';
import { TestServer } from '../support/server.js';

let server: TestServer;
afterAll(async () => { await server?.stop(); });
it('smoke', async () => {
  server = await TestServer.start();
  await server.request('POST', '/v1/databases', { name: 'app' });
  const client = createClient({ url: `${server.url}/v1/databases/app/`, authToken: server.key, intMode: 'bigint' });
  await client.execute('CREATE TABLE t(id INTEGER PRIMARY KEY, v)');
  const r = await client.execute({ sql: 'INSERT INTO t(v) VALUES (?)', args: [1.5] });
  console.log(r);
  const all = await client.execute('SELECT id, v, 1.0 AS f, 9223372036854775807 AS big, x\'00ff\' AS b FROM t');
  console.log(all.rows, all.columnTypes);
  const b = await client.batch(['INSERT INTO t(v) VALUES (2)', 'SELECT count(*) FROM t'], 'write');
  console.log(b[1].rows);
  const tx = await client.transaction('write');
  await tx.execute('INSERT INTO t(v) VALUES (3)');
  await tx.rollback();
  console.log((await client.execute('SELECT count(*) AS n FROM t')).rows);
  await client.executeMultiple('INSERT INTO t(v) VALUES (4); INSERT INTO t(v) VALUES (5);');
  console.log((await client.execute('SELECT count(*) AS n FROM t')).rows);
  const bad = await client.execute('INSERT INTO t(id) VALUES (1)').catch((e) => e);
  console.log(bad.code, bad.message, bad.rawCode);
  const noslash = createClient({ url: `${server.url}/v1/databases/app`, authToken: server.key });
  console.log(await noslash.execute('SELECT 1').catch((e) => [e.code, e.message]));
});
