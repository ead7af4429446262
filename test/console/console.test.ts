import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, startClusterNode, tempDir, type TestServer } from '../support/server.js';
import { sleep, waitFor } from '../support/wait.js';

/**
 * The web console (docs/CONSOLE.md) in a real browser: Debian's chromium driven by playwright-core
 * against a real two-node cluster, through the user journeys of issue 17. Screenshots of each step
 * are kept in .tmp/console-screenshots/.
 *
 * Without /usr/bin/chromium the journeys are skipped locally (apt-get install -y chromium); when CI
 * is set, a missing browser fails this file instead.
 */
const CHROMIUM = '/usr/bin/chromium';
const chromiumMissing = !existsSync(CHROMIUM);
if (chromiumMissing && process.env.CI) {
  throw new Error(`${CHROMIUM} is missing: .ci/run installs Debian's chromium package for the console tests`);
}
const SCREENSHOTS = path.join(REPO_ROOT, '.tmp', 'console-screenshots');
/** How long a page may take to show what a step expects (CI runs other test files beside this one). */
const POLL = { timeout: 15_000 };

describe.skipIf(chromiumMissing)(
  `web console in chromium${chromiumMissing ? ` (skipped: ${CHROMIUM} missing; apt-get install -y chromium)` : ''}`,
  () => {
    const servers: TestServer[] = [];
    let dataDir: string;
    let profileDir: string;
    let primary: TestServer;
    let browser: BrowserContext;
    let page: Page;
    /** Every URL the pages asked for: all must be on the node (nothing from a CDN). */
    const requested: string[] = [];
    /** The secret of a read-only key created through the console. */
    let readerSecret = '';

    const shot = async (target: Page, name: string) => {
      await target.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });
    };

    const openPage = async (): Promise<Page> => {
      const opened = await browser.newPage();
      opened.on('request', (request) => requested.push(request.url()));
      return opened;
    };

    const signIn = async (target: Page, key: string) => {
      await target.goto(`${primary.url}/console`);
      await target.getByTestId('sign-in-key').fill(key);
      await target.getByTestId('sign-in').click();
      await target.getByTestId('signed-in-as').waitFor();
    };

    const runSql = async (target: Page, sql: string, params = '') => {
      await target.getByTestId('sql-editor').fill(sql);
      await target.getByTestId('sql-params').fill(params);
      await target.getByTestId('sql-run').click();
    };

    beforeAll(async () => {
      rmSync(SCREENSHOTS, { recursive: true, force: true });
      mkdirSync(SCREENSHOTS, { recursive: true });
      dataDir = tempDir('litebase-console-');
      primary = await startClusterNode(dataDir, 'n1', servers);
      await startClusterNode(dataDir, 'n2', servers);
      await waitFor(async () => (await primary.request('GET', '/v1/cluster')).body.nodes.length === 2, 15_000, 'two nodes in the cluster');
      profileDir = tempDir('litebase-console-chromium-');
      // A fresh profile each run (launchPersistentContext passes it as --user-data-dir; headless adds --headless).
      browser = await chromium.launchPersistentContext(profileDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: [
          '--no-sandbox',
          '--disable-gpu',
          '--disable-dev-shm-usage',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
        viewport: { width: 1280, height: 900 },
        acceptDownloads: true,
      });
      page = await openPage();
    }, 90_000);

    afterAll(async () => {
      await browser?.close();
      for (const server of servers) await server.stop();
      for (const server of servers.slice(0, 1)) server.cleanup();
      if (profileDir) rmSync(profileDir, { recursive: true, force: true });
    });

    it('serves the console on every node without a key, with a policy that keeps the page on the node', async () => {
      for (const node of servers) {
        const response = await fetch(`${node.url}/console/`);
        expect(response.status).toBe(200);
        expect(response.headers.get('content-security-policy')).toContain("default-src 'self'");
        expect(await response.text()).toContain('<div id="app">');
      }
      // The API itself still wants a key.
      expect((await fetch(`${primary.url}/v1/databases`)).status).toBe(401);
    });

    it('signs in with an access key, refuses a wrong one, and keeps the key in sessionStorage only', async () => {
      await page.goto(`${primary.url}/console`);
      await page.getByTestId('sign-in-key').fill('lb_aaaaaaaaaaaa_wrongwrongwrongwrongwrong');
      await page.getByTestId('sign-in').click();
      await expect.poll(() => page.getByTestId('error-code').textContent(), POLL).toBe('INVALID_KEY');
      await shot(page, '01-sign-in-refused');

      await signIn(page, primary.key);
      expect(await page.getByTestId('signed-in-as').textContent()).toContain('root');
      expect(
        await page.evaluate(() =>
          (globalThis as unknown as { sessionStorage: { getItem(key: string): string | null } }).sessionStorage.getItem(
            'litebase.console.key',
          ),
        ),
      ).toBe(primary.key);
      expect(await page.evaluate(() => JSON.stringify((globalThis as unknown as { localStorage: unknown }).localStorage))).not.toContain(
        primary.key,
      );
      await shot(page, '02-signed-in');
    });

    it('creates a database', async () => {
      await page.getByTestId('create-database-name').fill('shop');
      await page.getByTestId('create-database').click();
      await page.getByTestId('database-shop').waitFor();
      expect((await primary.request('GET', '/v1/databases/shop')).status).toBe(200);
      await expect
        .poll(() => page.getByTestId('database-shop').getByTestId('database-size').textContent(), { timeout: 10_000 })
        .toMatch(/KiB|B$/);
      await shot(page, '03-database-created');
    });

    it('runs queries with parameters, shows rows, errors with their code, the query plan and the history', async () => {
      await page.getByTestId('nav-sql').click();
      await page.getByTestId('sql-database').selectOption('shop');
      await runSql(
        page,
        "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL); INSERT INTO items (name, price) VALUES ('apple', 1.5), ('pear', 2)",
      );
      await page.getByTestId('sql-results').waitFor();
      await runSql(page, 'INSERT INTO items (name, price) VALUES (?, ?)', '["plum; ripe", 3.25]');
      await expect.poll(() => page.getByTestId('result-0').textContent(), POLL).toContain('1 row changed');

      await runSql(page, 'SELECT name, price FROM items WHERE price > :min ORDER BY id', '{"min": 1}');
      const grid = page.getByTestId('result-0');
      await expect.poll(() => grid.locator('tbody tr').count(), POLL).toBe(3);
      expect(await grid.locator('tbody tr').nth(2).locator('td').allTextContents()).toEqual(['plum; ripe', '3.25']);
      await shot(page, '04-query-rows');

      await runSql(page, 'SELECT * FROM no_such_table');
      await expect.poll(() => page.getByTestId('error-code').textContent(), POLL).toMatch(/^[A-Z_]+$/);
      expect(await page.getByTestId('error').textContent()).toContain('no such table');
      await shot(page, '05-query-error');

      await page.getByTestId('sql-editor').fill('SELECT * FROM items WHERE id = 2');
      await page.getByTestId('sql-params').fill('');
      await page.getByTestId('sql-explain').click();
      await expect.poll(() => page.getByTestId('sql-plan').textContent(), POLL).toMatch(/SEARCH items USING INTEGER PRIMARY KEY/);
      expect(await page.getByTestId('sql-history').locator('li').count()).toBe(5);
      await shot(page, '06-query-plan');
    });

    it('lists the statements run on a database, normalized, sorts them by any column, and resets them', async () => {
      // The same SELECT with other values, three more times: one statement with four runs.
      for (const min of [0, 2, 3]) {
        await primary.request('POST', '/v1/databases/shop/query', {
          statements: [{ sql: 'SELECT name, price FROM items WHERE price > :min ORDER BY id', params: { min } }],
        });
      }
      await page.getByTestId('nav-statements').click();
      await page.getByTestId('statements-database').selectOption('shop');
      const table = page.getByTestId('statements');
      const rowOf = (sql: string) => table.locator('tbody tr', { has: page.locator('td[data-column="sql"]', { hasText: sql }) });
      const select = rowOf('SELECT name, price FROM items WHERE price > :min ORDER BY id');
      await expect.poll(() => select.locator('td[data-column="count"]').textContent(), POLL).toBe('4');
      expect(await select.locator('td[data-column="rowsRead"]').textContent()).toBe('8'); // price > 1, 0, 2, 3: 3 + 3 + 1 + 1
      // Literals collapsed: the INSERT of two rows and the one of a single row.
      expect(await rowOf('INSERT INTO items(name, price) VALUES (?, ?), ...').locator('td[data-column="rowsWritten"]').textContent()).toBe(
        '2',
      );
      expect(await rowOf('INSERT INTO items(name, price) VALUES (?, ?)').count()).toBeGreaterThan(0);
      // The failed statement, with its error code.
      expect(await rowOf('SELECT * FROM no_such_table').locator('td[data-column="errors"]').textContent()).toBe('1 (SQLITE_ERROR)');
      expect(await page.getByTestId('statements-summary').textContent()).toContain('On node n1 (primary)');

      // Sorting by runs, most first, then least first.
      const runs = async () => (await table.locator('td[data-column="count"]').allTextContents()).map(Number);
      await page.getByTestId('statements-sort-count').click();
      await expect.poll(async () => (await runs())[0], POLL).toBe(4);
      const descending = await runs();
      expect(descending).toEqual([...descending].sort((a, b) => b - a));
      await page.getByTestId('statements-sort-count').click();
      await expect.poll(async () => (await runs())[0], POLL).toBe(Math.min(...descending));
      const ascending = await runs();
      expect(ascending).toEqual([...ascending].sort((a, b) => a - b));
      await shot(page, '06b-statements');

      // Every node's counts, merged by this one: the same statements (the Replica served none of these).
      await page.getByTestId('statements-scope').selectOption('cluster');
      await expect.poll(() => page.getByTestId('statements-summary').textContent(), POLL).toContain('n1 (primary), n2 (replica), merged');
      expect(await select.locator('td[data-column="count"]').textContent()).toBe('4');
      await page.getByTestId('statements-scope').selectOption('node');
      await expect.poll(() => page.getByTestId('statements-summary').textContent(), POLL).toContain('On node n1 (primary)');

      await page.getByTestId('statements-reset').click();
      await page.getByTestId('statements-reset-confirm').getByTestId('confirm-yes').click();
      await expect.poll(() => table.locator('tbody tr').count(), POLL).toBe(0);
      const answer = await primary.request('GET', '/v1/databases/shop/statements');
      expect(answer.body.tracked).toBe(0);
    });

    it('shows the cluster: nodes, roles, heartbeats, term and a replica lag chart', async () => {
      await page.getByTestId('nav-cluster').click();
      await page.getByTestId('node-n2').waitFor();
      expect(await page.getByTestId('node-n1').getByTestId('node-role').textContent()).toBe('primary');
      expect(await page.getByTestId('node-n2').getByTestId('node-role').textContent()).toBe('replica');
      expect(await page.getByTestId('cluster-primary').textContent()).toContain('n1');
      expect(Number(await page.getByTestId('cluster-term').textContent())).toBeGreaterThan(0);
      // A few polls later the chart has points for both nodes.
      await sleep(2500);
      expect(await page.getByTestId('lag-chart').locator('canvas').count()).toBe(1);
      expect(await page.getByTestId('lag-chart').textContent()).toContain('n2');
      await shot(page, '07-cluster');
    });

    it('charts transactions/s, p99 latency, segment write time and replica lag from /metrics', async () => {
      await page.getByTestId('nav-metrics').click();
      await page.getByTestId('metrics').waitFor();
      // Writes while the page scrapes, so the rates have something to show.
      await primary.request('POST', '/v1/databases/shop/query', { statements: [{ sql: 'CREATE TABLE events (n INTEGER)' }] });
      let sawTransactions = false;
      for (let i = 0; i < 60 && !sawTransactions; i++) {
        await primary.request('POST', '/v1/databases/shop/query', { statements: [{ sql: 'INSERT INTO events VALUES (?)', params: [i] }] });
        await sleep(100);
        sawTransactions =
          Number(
            (await page
              .getByTestId('metrics-tps')
              .textContent()
              .catch(() => null)) ?? 0,
          ) > 0;
      }
      expect(sawTransactions).toBe(true);
      // Two more readings with writes, so each chart has a line to draw in the screenshot.
      for (let i = 0; i < 30; i++) {
        await primary.request('POST', '/v1/databases/shop/query', { statements: [{ sql: 'INSERT INTO events VALUES (?)', params: [i] }] });
        await sleep(150);
      }
      for (const chart of ['chart-transactions', 'chart-latency', 'chart-segments', 'chart-lag']) {
        expect(await page.getByTestId(chart).locator('canvas').count()).toBe(1);
      }
      await shot(page, '08-metrics');
    });

    it('restores to a moment into a new database and shows the restored rows; downloads a backup', async () => {
      await primary.request('POST', '/v1/databases/shop/query', {
        statements: [{ sql: "INSERT INTO items (name, price) VALUES ('before', 1)" }],
      });
      await sleep(600);
      const moment = new Date().toISOString();
      await sleep(600);
      await primary.request('POST', '/v1/databases/shop/query', {
        statements: [{ sql: "INSERT INTO items (name, price) VALUES ('after', 2)" }],
      });

      await page.getByTestId('nav-restore').click();
      await page.getByTestId('restore-database').selectOption('shop');
      await page.getByTestId('restore-timeline').locator('canvas').waitFor();
      await page.getByTestId('restore-timestamp').fill(moment);
      await page.getByTestId('restore-target').fill('shop-then');
      await page.getByTestId('restore-start').click();
      await expect.poll(() => page.getByTestId('restore-status').textContent(), { timeout: 30_000 }).toBe('succeeded');
      expect(await page.getByTestId('restore-progress').getAttribute('value')).toBe('100');
      await shot(page, '09-restored');

      const download = page.waitForEvent('download');
      await page.getByTestId('backup-download').click();
      const file = await (await download).path();
      expect(readFileSync(file).subarray(0, 16).toString('latin1')).toBe('SQLite format 3\u0000');

      await page.getByTestId('restore-open-target').click();
      await expect.poll(() => page.getByTestId('sql-database').inputValue(), POLL).toBe('shop-then');
      await runSql(page, "SELECT name FROM items WHERE name IN ('before', 'after') ORDER BY id");
      const grid = page.getByTestId('result-0');
      await expect.poll(() => grid.locator('tbody td').allTextContents(), POLL).toEqual(['before']);
      await shot(page, '10-restored-rows');

      // A position works as well as a moment.
      await page.getByTestId('nav-restore').click();
      await page.getByTestId('restore-database').selectOption('shop');
      await page.getByTestId('restore-timeline').locator('canvas').waitFor();
      const position = (await primary.request('GET', '/v1/databases/shop')).body.database.position as string;
      await page.getByTestId('restore-by-position').check();
      await page.getByTestId('restore-position').fill(position);
      await page.getByTestId('restore-target').fill('shop-at-position');
      await page.getByTestId('restore-start').click();
      await expect
        .poll(() => page.getByTestId('restore-job').textContent(), { timeout: 30_000 })
        .toContain(`shop-at-position at position ${position}`);
    });

    it('creates keys with the secret shown once, lists them, and revokes one', async () => {
      await page.getByTestId('nav-keys').click();
      const create = async (name: string): Promise<string> => {
        await page.getByTestId('key-name').fill(name);
        await page.getByTestId('key-databases').fill('*');
        await page.getByTestId('key-create').click();
        const secret = (await page.getByTestId('new-key-secret').textContent()) ?? '';
        expect(secret).toMatch(/^lb_[a-z0-9]{12}_/);
        return secret;
      };
      readerSecret = await create('reader');
      await shot(page, '11-key-secret-once');
      await page.getByTestId('new-key-dismiss').click();
      expect(await page.getByTestId('new-key').count()).toBe(0);
      const doomedSecret = await create('doomed');
      await page.getByTestId('new-key-dismiss').click();
      const doomedId = doomedSecret.split('_')[1] as string;
      // The list shows the key, never its secret.
      await page.getByTestId(`key-${doomedId}`).waitFor();
      expect(await page.getByTestId('keys').textContent()).not.toContain(doomedSecret.split('_')[2]);

      const asDoomed = () =>
        fetch(`${primary.url}/v1/databases`, { headers: { authorization: `Bearer ${doomedSecret}` } }).then((response) => response.status);
      expect(await asDoomed()).toBe(200);
      await page.getByTestId(`revoke-${doomedId}`).click();
      await shot(page, '12-key-revoke-confirm');
      await page.getByTestId('confirm-yes').click();
      await expect.poll(() => page.getByTestId(`key-${doomedId}`).getByTestId('key-revoked').textContent(), POLL).not.toBe('');
      await waitFor(async () => (await asDoomed()) === 401, 5000, 'the revoked key refused');
      await shot(page, '13-key-revoked');
    });

    it('gives a read-only key its pages with every write control disabled', async () => {
      const reader = await openPage();
      await signIn(reader, readerSecret);
      expect(await reader.getByTestId('signed-in-as').textContent()).toContain('reader');
      await reader.getByTestId('database-shop').waitFor();
      expect(await reader.getByTestId('create-database').isDisabled()).toBe(true);
      expect(await reader.getByTestId('drop-shop').isDisabled()).toBe(true);
      await shot(reader, '14-read-only-databases');

      await reader.getByTestId('nav-sql').click();
      await reader.getByTestId('sql-database').selectOption('shop');
      await reader.getByTestId('sql-read-only').waitFor();
      await runSql(reader, 'SELECT count(*) AS n FROM items');
      await expect.poll(() => reader.getByTestId('result-0').locator('tbody td').textContent(), POLL).toBe('5');
      await runSql(reader, "INSERT INTO items (name) VALUES ('nope')");
      await expect.poll(() => reader.getByTestId('error-code').textContent(), POLL).toBe('PERMISSION_DENIED');
      // Each key has its own history: the root key's statements are not listed for this one.
      expect(await reader.getByTestId('sql-history').locator('li').count()).toBe(2);
      await shot(reader, '15-read-only-sql');

      await reader.getByTestId('nav-statements').click();
      await reader.getByTestId('statements-database').selectOption('shop');
      await reader.getByTestId('statements-summary').waitFor();
      expect(await reader.getByTestId('statements-reset').isDisabled()).toBe(true);

      await reader.getByTestId('nav-restore').click();
      expect(await reader.getByTestId('restore-start').isDisabled()).toBe(true);
      await reader.getByTestId('nav-keys').click();
      expect(await reader.getByTestId('key-create').isDisabled()).toBe(true);
      await reader.getByTestId('keys-denied').waitFor();
      await shot(reader, '16-read-only-keys');
      await reader.close();
    });

    it('asked for nothing outside the node', () => {
      expect(requested.length).toBeGreaterThan(10);
      expect(requested.filter((url) => !url.startsWith(primary.url) && !url.startsWith('blob:'))).toEqual([]);
    });
  },
);
