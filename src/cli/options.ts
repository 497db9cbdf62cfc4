/* Options shared by the commands; kept apart so that --help and --version load no command code. */
import type { Command } from 'commander';

export interface PromoteFlags {
  dryRun?: boolean; codeOnly?: boolean; json?: boolean; service?: string[]; force?: boolean; wait?: string; abandon?: boolean; resume?: boolean; steps?: string;
  project?: string; stateDir?: string; verbose?: boolean; quiet?: boolean;
}

export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('-C, --project <dir>', 'project directory holding profiles/ (default: current directory)')
    .option('--state-dir <dir>', 'where state, history, logs and the release cache live (default: <project>/.updateserver)')
    .option('--json', 'print the result as JSON on stdout (logs stay on stderr)')
    .option('-v, --verbose', 'log every step and command')
    .option('-q, --quiet', 'log only warnings and errors');
}

