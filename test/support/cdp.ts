import { get } from 'node:http'
import WebSocket from 'ws'

/** What a debugger saw of a run: the sessions it attached, and where each pause was. */
export interface DebugSessions {
  /** Targets attached to, in order (`/json/list`'s `url`: the process's entry). */
  attached: string[]
  /** Each `Debugger.paused`: the top frame's script URL and the pause's reason. */
  pauses: Array<{ url: string; reason: string }>
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
  void done.finally(() => (finished = true))
  while (!finished) {
    const target = await listTarget(host, port)
    if (!target) {
      await new Promise((resolve) => setTimeout(resolve, 100))
      continue
    }
    // the address we reached, whatever host the inspector names in its own URL
    const url = `ws://${host}:${port}${new URL(target.webSocketDebuggerUrl).pathname}`
    try {
      await attach(url, seen)
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
function attach(url: string, seen: DebugSessions): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url)
    let id = 0
    const send = (method: string, params: object = {}) => ws.send(JSON.stringify({ id: ++id, method, params }))
    ws.on('open', () => {
      send('Runtime.enable')
      send('Debugger.enable')
      send('Runtime.runIfWaitingForDebugger')
    })
    ws.on('message', (data) => {
      const message = JSON.parse(String(data)) as { method?: string; params?: { reason: string; callFrames: Array<{ url: string }> } }
      if (message.method !== 'Debugger.paused') return
      seen.pauses.push({ url: message.params!.callFrames[0]?.url ?? '', reason: message.params!.reason })
      send('Debugger.resume')
    })
    ws.on('close', () => resolve())
    ws.on('error', reject)
  })
}
