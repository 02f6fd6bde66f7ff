import type { IdMapLine, IdMapPlan } from './idmap.js'
import { isInside } from './paths.js'
import type { ResolvedSandboxOptions } from './options.js'

/** Everything the launcher needs, as its argv flags (without `-- CMD`). */
export interface SandboxPlan {
  args: string[]
  /** The paths actually bound back under tmpfs targets. */
  keep: string[]
}

export interface PlanInputs {
  options: ResolvedSandboxOptions
  idMap: IdMapPlan
  /** Path of the rendered hosts file (written by the caller), if any. */
  hostsFile?: string
  /** Paths the command needs (cwd, project, node binary…); those under a tmpfs stay visible. */
  needs?: string[]
  /** Join this already-mapped user namespace (warm holder) instead of creating one. */
  usernsFd?: number
  /** Detach from the controlling terminal (workers); the CLI keeps it for interactive use. */
  newSession?: boolean
}

/**
 * Turns validated options into launcher flags. Pure: the same inputs give the same
 * argv, so what the sandbox will do can be read (and tested) before it runs.
 */
export function createSandboxPlan(inputs: PlanInputs): SandboxPlan {
  const { options, idMap } = inputs
  const args: string[] = []
  if (inputs.usernsFd !== undefined) {
    args.push('--userns-fd', String(inputs.usernsFd))
  } else {
    args.push(...idMapArgs(idMap))
  }
  for (const target of options.tmpfs) args.push('--tmpfs', target)
  if (options.tmpfsSize) args.push('--tmpfs-size', options.tmpfsSize)
  const keep = keptPaths(options.tmpfs, [...options.keep, ...(inputs.needs ?? [])])
  for (const path of keep) args.push('--keep', path)
  if (inputs.hostsFile) args.push('--hosts-file', inputs.hostsFile)
  if (options.hostname) args.push('--hostname', options.hostname)
  if (options.network === 'host') args.push('--host-network')
  if (inputs.newSession) args.push('--new-session')
  if (options.pidNamespace) args.push('--pid-namespace')
  return { args, keep }
}

/** The launcher flags that create and map a user namespace. */
export function idMapArgs(idMap: IdMapPlan): string[] {
  const args: string[] = []
  for (const line of idMap.uidMap) args.push('--uid-map', formatLine(line))
  for (const line of idMap.gidMap) args.push('--gid-map', formatLine(line))
  if (idMap.helpers) args.push('--newuidmap', idMap.helpers.newuidmap, '--newgidmap', idMap.helpers.newgidmap)
  return args
}

/**
 * The needed paths strictly under some tmpfs target, outermost only (binding /tmp/a
 * also brings /tmp/a/b). A path equal to a target is dropped: binding it back would
 * undo the tmpfs.
 */
export function keptPaths(targets: string[], needs: string[]): string[] {
  const under = needs.filter((p) => !targets.includes(p) && targets.some((t) => isInside(p, t)))
  const unique = [...new Set(under)].sort()
  return unique.filter((p) => !unique.some((other) => other !== p && isInside(p, other)))
}


function formatLine(line: IdMapLine): string {
  return `${line.inside}:${line.outside}:${line.count}`
}
