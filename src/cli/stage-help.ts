/*
 * `updateserver prod --help` should explain a promotion, as `updateserver promote --help` does. For a
 * default command, commander answers --help with the top-level help, so when the first argument names
 * no command (it is a stage) and help is asked for, the arguments are routed to `promote` explicitly.
 */
import type { Command } from 'commander';

export function routeStageHelp(program: Command, argv: readonly string[]): string[] {
  const args = argv.slice(2);
  const first = args[0];
  if (first === undefined || first.startsWith('-') || !args.some((a) => a === '--help' || a === '-h')) return [...argv];
  const isCommand = first === 'help' || program.commands.some((c) => c.name() === first || c.aliases().includes(first));
  return isCommand ? [...argv] : [...argv.slice(0, 2), 'promote', ...args];
}
