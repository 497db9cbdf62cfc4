/*
 * Runtime API lines used by a promotion plan. Every argument is checked by runtimeWord, so no line
 * can carry a second command.
 */
import { runtimeWord } from './runtime-client.js';
export { setMapCommand as mapLine, showMapCommand as showMapLine } from './map.js';

export const healthLine = (backend: string, server: string, state: 'up' | 'down') =>
  `set server ${runtimeWord('backend', backend)}/${runtimeWord('server', server)} health ${state}`;
