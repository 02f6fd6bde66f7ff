/** A host name as `hosts`, `hostsFile` and `egress` take it: labels of letters, digits, "-", "_", at most 253 characters. */
export const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/

/**
 * Renders the sandbox's /etc/hosts. With no `base`: `entries`, then `localhost`
 * (127.0.0.1 and ::1) and the sandbox hostname on loopback, unless `entries` name them.
 * With a `base` (the accepted lines of `hostsFile`) the file is used instead of those
 * defaults: it answers for every name it maps -- `localhost` and the hostname too -- and
 * the defaults only fill in the names it leaves out, so `localhost` always resolves.
 * `entries` win over both: their names are taken out of the base's lines. The file was
 * given to say what names mean; a default put first would quietly overrule it (glibc
 * takes the first match).
 */
export function renderHostsFile(entries: Map<string, string[]>, options: { hostname?: string; base?: string } = {}): string {
  const base = options.base === undefined ? undefined : withoutNames(options.base, new Set(entries.keys()))
  const taken = new Set([...entries.keys(), ...(base?.names ?? [])])
  const all = new Map<string, string[]>()
  for (const [name, ips] of entries) all.set(name, ips)
  const loopback = ['127.0.0.1', '::1']
  if (!taken.has('localhost')) all.set('localhost', loopback)
  if (options.hostname && !taken.has(options.hostname.toLowerCase())) all.set(options.hostname.toLowerCase(), loopback)

  // one line per name and address: grouping names on one line would make the first
  // the canonical name of the others (`getent hosts localhost` answering another name)
  const lines = ['# written by vitest-pool-rootless for this sandbox only']
  for (const [name, ips] of all) for (const ip of ips) lines.push(`${ip}\t${name}`)
  if (base !== undefined) lines.push('', '# from hostsFile', base.text.trimEnd())
  return `${lines.join('\n')}\n`
}

/**
 * `base` (checked `IP name...` lines, comments, blank lines) without the names in
 * `drop` (lowercase); a line left with no name goes. Also the (lowercase) names it maps.
 */
function withoutNames(base: string, drop: ReadonlySet<string>): { text: string; names: Set<string> } {
  const names = new Set<string>()
  const lines: string[] = []
  for (const line of base.split('\n')) {
    const content = line.replace(/#.*/, '').trim()
    if (content === '') {
      lines.push(line)
      continue
    }
    const [ip, ...given] = content.split(/[ \t]+/)
    const kept = given.filter((name) => !drop.has(name.toLowerCase().replace(/\.$/, '')))
    for (const name of kept) names.add(name.toLowerCase().replace(/\.$/, ''))
    if (kept.length === given.length) lines.push(line)
    else if (kept.length > 0) lines.push(`${ip}\t${kept.join(' ')}`)
  }
  return { text: lines.join('\n'), names }
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
