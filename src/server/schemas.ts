import { Type, type Static } from 'typebox';

/**
 * Request schemas, validated by fastify before a handler runs (docs/ARCHITECTURE.md §8). Types come from
 * the schemas, so the validator and the handler cannot disagree.
 */
export const DatabaseParams = Type.Object({
  db: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }),
});

export const TransactionParams = Type.Object({
  db: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,62}$' }),
  id: Type.String({ pattern: '^[0-9a-f-]{36}$' }),
});

export const CreateDatabaseBody = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });

const Params = Type.Union([Type.Array(Type.Unknown(), { maxItems: 32766 }), Type.Record(Type.String(), Type.Unknown())]);

export const StatementSchema = Type.Object(
  {
    sql: Type.String({ minLength: 1, maxLength: 1_000_000 }),
    params: Type.Optional(Params),
  },
  { additionalProperties: false },
);

const Position = Type.String({ pattern: '^[0-9]{1,20}$' });

export function queryBodySchema(maxStatements: number) {
  return Type.Object(
    {
      statements: Type.Array(StatementSchema, { minItems: 1, maxItems: maxStatements }),
      mode: Type.Optional(Type.Union([Type.Literal('transaction'), Type.Literal('independent')])),
      minPosition: Type.Optional(Position),
    },
    { additionalProperties: false },
  );
}

export function transactionQueryBodySchema(maxStatements: number) {
  return Type.Object(
    { statements: Type.Array(StatementSchema, { minItems: 1, maxItems: maxStatements }) },
    { additionalProperties: false },
  );
}

export const BeginTransactionBody = Type.Object(
  { timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })) },
  { additionalProperties: false },
);

export type QueryBody = Static<ReturnType<typeof queryBodySchema>>;
export type Statement = Static<typeof StatementSchema>;
