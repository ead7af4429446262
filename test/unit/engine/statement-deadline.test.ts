import { readdirSync } from 'node:fs';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { isInterrupted, StatementDeadline, statementDeadlineLibrary } from '../../../src/engine/statement-deadline.js';

/** The extension as `npm test` builds it (infra/build-native.mjs), on real in-memory connections. */
const ENDLESS_COUNT = 'WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c';

function open(): { db: Database.Database; deadline: StatementDeadline } {
  const db = new Database(':memory:');
  db.exec('CREATE TABLE t(x)');
  return { db, deadline: StatementDeadline.attach(db) };
}

function failure(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected it to throw');
}

describe('statement deadline (src/native/statement-deadline.c)', () => {
  it('is built', () => {
    expect(statementDeadlineLibrary()).toMatch(/statement-deadline\.so$/);
  });

  it('interrupts a looping write at the deadline and SQLite undoes it', () => {
    const { db, deadline } = open();
    db.exec('INSERT INTO t VALUES (1)');
    const started = Date.now();
    deadline.arm(150);
    const error = failure(() =>
      db.prepare(`INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c`).run(),
    );
    deadline.disarm();
    expect(isInterrupted(error)).toBe(true);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBe(1);
    db.close();
  });

  it('inside a transaction an interrupted write rolls the transaction back; an interrupted read does not', () => {
    const { db, deadline } = open();
    db.exec('BEGIN');
    db.exec('INSERT INTO t VALUES (1)');
    deadline.arm(50);
    expect(isInterrupted(failure(() => db.prepare(ENDLESS_COUNT).get()))).toBe(true);
    deadline.disarm();
    expect(db.inTransaction).toBe(true);
    deadline.arm(50);
    expect(isInterrupted(failure(() => db.prepare(`INSERT INTO t ${ENDLESS_COUNT}`).run()))).toBe(true);
    deadline.disarm();
    expect(db.inTransaction).toBe(false);
    expect(db.prepare('SELECT count(*) FROM t').pluck().get()).toBe(0);
    db.close();
  });

  it('a deadline that fires after its statement ended does not hit the next one', () => {
    const { db, deadline } = open();
    deadline.arm(1);
    const until = Date.now() + 30;
    while (Date.now() < until) {
      // Let the deadline pass with nothing running.
    }
    deadline.disarm();
    expect(db.prepare('INSERT INTO t VALUES (2)').run().changes).toBe(1);
    db.close();
  });

  it('a disarmed deadline never fires, and a later, shorter one still does', () => {
    const { db, deadline } = open();
    deadline.arm(60_000);
    db.prepare('INSERT INTO t VALUES (1)').run();
    deadline.disarm();
    deadline.arm(100);
    expect(isInterrupted(failure(() => db.prepare(ENDLESS_COUNT).get()))).toBe(true);
    deadline.disarm();
    // Armed for 50 ms and disarmed at once: a statement running well past that time must finish.
    deadline.arm(50);
    deadline.disarm();
    const started = Date.now();
    const counted = db
      .prepare('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000000) SELECT count(*) FROM c')
      .pluck()
      .get();
    expect(counted).toBe(3_000_000);
    expect(Date.now() - started).toBeGreaterThan(60);
    db.close();
  });

  it('client SQL cannot call the function: not without the key, not from a trigger', () => {
    const { db } = open();
    const refused = failure(() => db.prepare("SELECT litebase_deadline(x'00', 0)").get()) as Error;
    expect(refused.message).toContain('internal to the server');
    db.exec(`CREATE TABLE u(x); CREATE TRIGGER u_in AFTER INSERT ON u BEGIN SELECT litebase_deadline(x'00', 0); END`);
    const inTrigger = failure(() => db.exec('INSERT INTO u VALUES (1)')) as Error;
    expect(inTrigger.message).toMatch(/unsafe use of litebase_deadline|internal to the server/);
    db.close();
  });

  it('connections open and close by the hundred without leaking watcher threads', () => {
    const threads = (): number => readdirSync('/proc/self/task').length;
    const before = threads();
    for (let i = 0; i < 200; i++) {
      const { db, deadline } = open();
      deadline.arm(10_000);
      db.prepare('INSERT INTO t VALUES (?)').run(i);
      deadline.disarm();
      db.close();
    }
    expect(threads()).toBeLessThanOrEqual(before + 1);
  });
});
