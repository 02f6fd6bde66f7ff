/**
 * The environment without the variables `drop` names: exact names, or prefixes ending
 * in `*` (`AWS_*`). For secrets a test has no business seeing, such as deploy tokens.
 */
export function scrubEnv<T extends Record<string, string | undefined>>(env: T, drop: readonly string[]): T {
  if (drop.length === 0) return env
  const exact = new Set(drop.filter((d) => !d.endsWith('*')))
  const prefixes = drop.filter((d) => d.endsWith('*')).map((d) => d.slice(0, -1))
  return Object.fromEntries(Object.entries(env).filter(([name]) => !exact.has(name) && !prefixes.some((p) => name.startsWith(p)))) as T
}
