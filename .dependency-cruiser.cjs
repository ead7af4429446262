// The floors of src/ (docs/ARCHITECTURE.md §17), bottom first. A module imports only from its own
// folder or from a lower floor; nothing imports in a circle. Checked by `npm run lint` (part of
// `npm test`): `npx depcruise src` explains a violation.
const FLOORS = [
  ['error-codes.ts'],
  ['errors.ts', 'metrics.ts', 'sql', 'threads', 'native'],
  ['format', 'client'],
  ['storage'],
  ['cluster'],
  ['log'],
  ['archive', 'replay'],
  ['compactor', 'engine'],
  ['config'],
  ['node'],
  ['restore'],
  ['server'],
  ['cli'],
];

const pathOf = (part) => (part.endsWith('.ts') ? `^src/${part.replace('.', '\\.')}$` : `^src/${part}/`);

const floorRules = FLOORS.flatMap((floor, level) =>
  floor
    .map((part) => [
      part,
      FLOORS.slice(level)
        .flat()
        .filter((other) => other !== part),
    ])
    .filter(([, above]) => above.length > 0)
    .map(([part, above]) => ({
      name: `floor-${part}`,
      comment: `src/${part} is on floor ${FLOORS.findIndex((floor) => floor.includes(part))}: it may import only its own folder and the floors below it`,
      severity: 'error',
      from: { path: pathOf(part) },
      to: { path: above.map(pathOf) },
    })),
);

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'Import circles make a change on one side ripple back to itself.',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    {
      name: 'floor-unknown',
      comment: 'Every folder of src/ has a floor: add a new one to FLOORS in .dependency-cruiser.cjs (and to docs/ARCHITECTURE.md §17).',
      severity: 'error',
      from: { path: '^src/', pathNot: FLOORS.flat().map(pathOf).concat(['^src/native/']) },
      to: {},
    },
    {
      name: 'client-package-portable',
      comment: 'src/client/portable is the @litebase/client package (packages/client): fetch and Web Crypto only, nothing else of src/.',
      severity: 'error',
      from: { path: '^src/client/portable/' },
      to: { path: '^src/', pathNot: '^src/client/portable/' },
    },
    ...floorRules,
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    includeOnly: '^src/',
  },
};
