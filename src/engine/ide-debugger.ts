import { existsSync } from 'node:fs'
import { isAbsolute } from 'node:path'

/**
 * VS Code's JavaScript Debug Terminal attaches to every Node process started under it:
 * `NODE_OPTIONS` loads its bootloader, which reads `VSCODE_INSPECTOR_OPTIONS` and reaches
 * the debugger over a Unix socket (`inspectorIpc`, under the host's temp dir) -- a path, so
 * no network namespace is in its way, but the sandbox's private tmpfs is. These paths stay
 * visible in the sandbox, so the debugger still attaches to sandboxed workers.
 */
export function ideDebuggerPaths(env: Partial<NodeJS.ProcessEnv>): string[] {
  const raw = env.VSCODE_INSPECTOR_OPTIONS
  if (!raw) return []
  let options: unknown
  try {
    options = JSON.parse(raw)
  } catch {
    return []
  }
  if (typeof options !== 'object' || options === null) return []
  const { inspectorIpc, fileCallback } = options as Record<string, unknown>
  return [inspectorIpc, fileCallback].filter((path): path is string => typeof path === 'string' && isAbsolute(path) && existsSync(path))
}
