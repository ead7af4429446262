import { describe, expect, it } from 'vitest';
import { splitStatements } from '../../../console/src/sql-split.js';

describe('console SQL splitting', () => {
  it('splits at statement-ending semicolons only', () => {
    expect(splitStatements('SELECT 1; SELECT 2;')).toEqual(['SELECT 1', 'SELECT 2']);
    expect(splitStatements("INSERT INTO t VALUES ('a;b', 'it''s;'); SELECT \"x;y\" FROM [c;d]")).toEqual([
      "INSERT INTO t VALUES ('a;b', 'it''s;')",
      'SELECT "x;y" FROM [c;d]',
    ]);
    expect(splitStatements('SELECT 1 -- a; comment\n; /* b; */ SELECT `q;`')).toEqual(['SELECT 1 -- a; comment', '/* b; */ SELECT `q;`']);
  });

  it('drops empty statements and lone comments', () => {
    expect(splitStatements(' ;; \n')).toEqual([]);
    expect(splitStatements('SELECT 1;\n-- done\n')).toEqual(['SELECT 1']);
  });

  it('keeps a trigger body whole until END;', () => {
    const trigger = 'CREATE TRIGGER t AFTER INSERT ON a BEGIN INSERT INTO b VALUES (1); UPDATE c SET n = n + 1; END';
    expect(splitStatements(`${trigger}; SELECT 1`)).toEqual([trigger, 'SELECT 1']);
  });
});
