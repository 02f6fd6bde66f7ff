/**
 * Renders the sandbox's /etc/hosts. `localhost` and the sandbox hostname point at
 * loopback; user entries come first so they win over anything in `base` (glibc uses
 * the first match).
 */
export function renderHostsFile(entries: Map<string, string[]>, options: { hostname?: string; base?: string } = {}): string {
  const all = new Map<string, string[]>()
  for (const [name, ips] of entries) all.set(name, ips)
  const loopback = ['127.0.0.1', '::1']
  if (options.base === undefined) {
    if (!all.has('localhost')) all.set('localhost', loopback)
  }
  if (options.hostname && !all.has(options.hostname.toLowerCase())) all.set(options.hostname.toLowerCase(), loopback)

  // one line per name and address: grouping names on one line would make the first
  // the canonical name of the others (`getent hosts localhost` answering another name)
  const lines = ['# written by vitest-pool-rootless for this sandbox only']
  for (const [name, ips] of all) for (const ip of ips) lines.push(`${ip}\t${name}`)
  if (options.base !== undefined) lines.push('', '# from hostsFile', options.base.trimEnd())
  return `${lines.join('\n')}\n`
}
