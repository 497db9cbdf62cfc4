import { resolve, join } from 'node:path';
import type { Project } from '../config/model.js';

export function projectFrom(options: { project?: string; stateDir?: string }): Project {
  const dir = resolve(options.project ?? process.env.UPDATESERVER_PROJECT ?? process.cwd());
  return { dir, stateDir: resolve(options.stateDir ?? process.env.UPDATESERVER_STATE_DIR ?? join(dir, '.updateserver')) };
}
