/**
 * Renders the sandbox's /etc/hosts. `localhost` (127.0.0.1 and ::1) and the sandbox
 * hostname point at loopback -- with or without a `base` file, so a hosts file that
 * lacks them can't leave `localhost` unresolvable -- unless `entries` give those names
 * other addresses. User entries come first, then the defaults, then `base` (the
 * accepted lines of `hostsFile`): glibc uses the first match.
 */
export function renderHostsFile(entries: Map<string, string[]>, options: { hostname?: string; base?: string } = {}): string {
  const all = new Map<string, string[]>()
  for (const [name, ips] of entries) all.set(name, ips)
  const loopback = ['127.0.0.1', '::1']
  if (!all.has('localhost')) all.set('localhost', loopback)
  if (options.hostname && !all.has(options.hostname.toLowerCase())) all.set(options.hostname.toLowerCase(), loopback)

  // one line per name and address: grouping names on one line would make the first
  // the canonical name of the others (`getent hosts localhost` answering another name)
  const lines = ['# written by vitest-pool-rootless for this sandbox only']
  for (const [name, ips] of all) for (const ip of ips) lines.push(`${ip}\t${name}`)
  if (options.base !== undefined) lines.push('', '# from hostsFile', options.base.trimEnd())
  return `${lines.join('\n')}\n`
}

/**
 * The sandbox's /etc/nsswitch.conf: the host's, with names resolved from the hosts file
 * alone. No DNS server is reachable inside, and glibc answers a name its `dns` source
 * can't reach with EAI_AGAIN ("temporary failure"), which reads like a flaky network;
 * with `files` alone an unknown name is ENOTFOUND at once, as on an offline host. The
 * other databases (passwd, group...) stay as the host has them. Under `network:
 * 'egress'` (`sources` 'files dns'), names not in the hosts file go to DNS after it.
 */
export function renderNsswitch(host: string, sources: 'files' | 'files dns' = 'files'): string {
  const lines = host.split('\n')
  const at = lines.findIndex((line) => /^\s*hosts\s*:/.test(line))
  // no comment on the line: glibc would take it for a source name and fail every lookup
  const ours = `hosts:          ${sources}`
  if (at === -1) lines.splice(lines.at(-1) === '' ? -1 : lines.length, 0, ours)
  else lines[at] = ours
  return `${lines.join('\n').trimEnd()}\n`
}
