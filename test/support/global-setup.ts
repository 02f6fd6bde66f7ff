import type { TestProject } from 'vitest/node'
import { packTarball, removeOldConsumers } from './consumer.js'

declare module 'vitest' {
  export interface ProvidedContext {
    tarball: string
  }
}

export default function setup(project: TestProject) {
  removeOldConsumers()
  project.provide('tarball', packTarball())
}
