/**
 * The start of every benchmark command with its own options: `--help` prints the usage (exit 0),
 * options that do not parse print why and the usage (exit 2); otherwise the parsed options.
 */
export function readOptions<Options>(
  argv: string[],
  usage: string,
  parse: (argv: string[]) => Options | string,
): { options: Options } | { exitCode: number } {
  if (argv.includes('--help')) {
    console.log(usage);
    return { exitCode: 0 };
  }
  const parsed = parse(argv);
  if (typeof parsed === 'string') {
    console.error(`${parsed}\n\n${usage}`);
    return { exitCode: 2 };
  }
  return { options: parsed };
}
