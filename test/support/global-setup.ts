import type { TestProject } from 'vitest/node'
import { packTarball, removeOldConsumers } from './consumer.js'

declare module 'vitest' {
  export interface ProvidedContext {
    tarball: string
  }
}

export default async function setup(project: TestProject) {
  await removeOldConsumers()
  project.provide('tarball', packTarball())
  // the consumers (Vitest 5's brings a whole Node, ~250 MB, some under the temp dir)
  // go when the run ends, not when the next one starts; KEEP_E2E=1 keeps them to look at
  return async () => {
    if (process.env.KEEP_E2E !== '1') await removeOldConsumers()
  }
}
