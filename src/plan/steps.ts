/**
 * The launcher's exit statuses, one per setup step (native/steps.h holds the same
 * table; test/launcher keeps them in line). A worker that exits with one of these did
 * not get to run the test: the sandbox failed.
 */
export const LAUNCHER_STEPS: Readonly<Record<number, string>> = {
  230: 'usage',
  231: 'open-hosts',
  232: 'open-keep',
  233: 'map-helper',
  234: 'unshare',
  235: 'setns',
  236: 'uid-map',
  237: 'gid-map',
  238: 'setid',
  239: 'mount-private',
  240: 'tmpfs',
  241: 'keep',
  242: 'hosts',
  243: 'hostname',
  244: 'loopback',
  245: 'chdir',
  246: 'session',
  247: 'pdeathsig',
  248: 'exec',
  249: 'hold',
  250: 'pid-namespace',
  251: 'forward',
  252: 'nsswitch',
}

/** The step name for a launcher exit status, or `undefined` if the command itself exited. */
export function launcherStep(exitCode: number | null): string | undefined {
  return exitCode == null ? undefined : LAUNCHER_STEPS[exitCode]
}
