import { get } from 'node:http'
import WebSocket from 'ws'

/** What a debugger saw of a run: the sessions it attached, and where each pause was. */
export interface DebugSessions {
  /** Targets attached to, in order (`/json/list`'s `url`: the process's entry). */
  attached: string[]
  /**
   * Each `Debugger.paused`: the top frame's script URL and 0-based line, the reason, and
   * whether a breakpoint of this client's did it.
   */
  pauses: Array<{ url: string; line: number; reason: string; breakpoint: boolean }>
}

/**
 * A small Chrome DevTools Protocol client, driven as a debugger on the host would: poll
 * `http://HOST:PORT/json/list`, attach to the target, `Runtime.runIfWaitingForDebugger`,
 * resume on every `Debugger.paused`, and, when the target goes (its worker ended), look
 * for the next -- until `done` settles.
 */
export async function driveDebugger(host: string, port: number, done: Promise<unknown>): Promise<DebugSessions> {
  const seen: DebugSessions = { attached: [], pauses: [] }
  let finished = false
  const sessions = new Set<WebSocket>()
  void done.finally(() => {
    finished = true
    // a process that waits for its debugger to go (node --inspect-brk, at its end)
    for (const ws of sessions) ws.close()
  })
  while (!finished) {
    const target = await listTarget(host, port)
    if (!target) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      continue
    }
    // the address we reached, whatever host the inspector names in its own URL
    const url = `ws://${host}:${port}${new URL(target.webSocketDebuggerUrl).pathname}`
    try {
      await attach(url, seen, sessions)
      seen.attached.push(target.url)
    } catch {
      // the worker went while we attached: the next one
    }
  }
  return seen
}

interface Target {
  url: string
  webSocketDebuggerUrl: string
}

function listTarget(host: string, port: number): Promise<Target | undefined> {
  return new Promise((resolve) => {
    const request = get({ host, port, path: '/json/list', timeout: 1000 }, (response) => {
      let body = ''
      response.setEncoding('utf8').on('data', (chunk: string) => (body += chunk))
      response.on('end', () => {
        try {
          resolve((JSON.parse(body) as Target[]).find((t) => t.webSocketDebuggerUrl))
        } catch {
          resolve(undefined)
        }
      })
      response.on('error', () => resolve(undefined))
    })
    request.on('error', () => resolve(undefined))
    request.on('timeout', () => request.destroy())
  })
}

/** One session: resolves when the target closes it (its process ended, or the inspector closed). */
function attach(url: string, seen: DebugSessions, sessions: Set<WebSocket>): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    sessions.add(ws)
    /** Each script's URL by id, as the target announces them (a paused frame names only the id). */
    const scripts = new Map<string, string>()
    let id = 0
    const send = (method: string, params: object = {}) => ws.send(JSON.stringify({ id: ++id, method, params }))
    ws.on('open', () => {
      send('Runtime.enable')
      send('Debugger.enable')
      send('Runtime.runIfWaitingForDebugger')
    })
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as { method?: string; params?: { reason: string; hitBreakpoints?: string[]; callFrames: Array<{ location: { scriptId: string; lineNumber: number } }>; scriptId?: string; url?: string } }
      if (message.method === 'Debugger.scriptParsed') scripts.set(message.params!.scriptId!, message.params!.url!)
      if (message.method !== 'Debugger.paused') return
      const { reason, hitBreakpoints = [], callFrames } = message.params!
      const top = callFrames[0]?.location
      seen.pauses.push({ url: (top && scripts.get(top.scriptId)) ?? '', line: top?.lineNumber ?? -1, reason, breakpoint: hitBreakpoints.length > 0 })
      send('Debugger.resume')
    })
    ws.on('close', () => (sessions.delete(ws), resolve()))
    ws.on('error', (error) => (sessions.delete(ws), reject(error)))
  })
}
