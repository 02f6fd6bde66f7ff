import type { TestProject } from 'vitest/node'
import { packTarball } from './consumer.js'

declare module 'vitest' {
  export interface ProvidedContext {
    tarball: string
  }
}

export default function setup(project: TestProject) {
  project.provide('tarball', packTarball())
}
