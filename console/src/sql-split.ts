/**
 * Split the SQL editor's text into statements at the semicolons that end them: not those inside
 * string literals ('...'), quoted names ("...", `...`, [...]), comments (-- and /* *\/), or the
 * body of a CREATE TRIGGER (which ends at END;). Empty statements are dropped.
 * Pure; unit-tested in test/unit/console-sql-split.test.ts.
 */
export function splitStatements(text: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let index = 0;
  const push = (end: number) => {
    const statement = text.slice(start, end).trim();
    if (statement !== '' && !/^(\s|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/)*$/.test(statement)) statements.push(statement);
  };
  while (index < text.length) {
    const char = text[index] as string;
    const next = text[index + 1];
    if (char === "'" || char === '"' || char === '`' || char === '[') {
      const close = char === '[' ? ']' : char;
      index++;
      while (index < text.length) {
        if (text[index] === close) {
          // A doubled quote is an escaped quote inside the literal.
          if (close !== ']' && text[index + 1] === close) index += 2;
          else break;
        } else {
          index++;
        }
      }
      index++;
    } else if (char === '-' && next === '-') {
      const end = text.indexOf('\n', index);
      index = end < 0 ? text.length : end + 1;
    } else if (char === '/' && next === '*') {
      const end = text.indexOf('*/', index + 2);
      index = end < 0 ? text.length : end + 2;
    } else if (char === ';') {
      const sofar = text.slice(start, index);
      // Inside a trigger body, only the semicolon after END closes the statement.
      if (/^\s*CREATE\s+(TEMP\s+|TEMPORARY\s+)?TRIGGER\b/i.test(sofar) && !/\bEND\s*$/i.test(sofar)) {
        index++;
        continue;
      }
      push(index);
      start = ++index;
    } else {
      index++;
    }
  }
  push(text.length);
  return statements;
}
