/*
 * Runtime API lines used by a promotion, built as data for the plan. Every argument comes from the
 * validated profile (names and paths of safe characters), so no line can carry a second command.
 */

export const mapLine = (mapFile: string, key: string, value: string) => `set map ${mapFile} ${key} ${value}`;
export const addMapLine = (mapFile: string, key: string, value: string) => `add map ${mapFile} ${key} ${value}`;
export const showMapLine = (mapFile: string) => `show map ${mapFile}`;
export const healthLine = (backend: string, server: string, state: 'up' | 'down') => `set server ${backend}/${server} health ${state}`;
export const showStatLine = () => 'show stat';
