import { checkStage, type CheckReport } from '../check/check.js';
import { quote } from '../commands/shell.js';
import { printable } from '../config/text.js';
import { fail, paint, printJson } from './output.js';
import { projectFrom } from './project.js';

export function renderCheck(report: CheckReport, out: { isTTY?: boolean } = process.stdout): string {
  const width = (key: 'subject' | 'check') => Math.max(...report.findings.map((f) => f[key].length));
  const lines = report.findings.map((f) => {
    const mark = f.ok ? paint(out, 'green', 'ok  ') : paint(out, 'red', 'FAIL');
    const line = `${mark}  ${f.subject.padEnd(width('subject'))}  ${f.check.padEnd(width('check'))}  ${printable(f.detail, { multiLine: true }).split('\n').join(`\n${' '.repeat(10)}`)}`;
    return f.fix ? `${line}\n      ${paint(out, 'bold', 'fix:')} ${printable(f.fix, { multiLine: true })}` : line;
  });
  const failed = report.findings.filter((f) => !f.ok).length;
  const summary = failed === 0
    ? `All ${report.findings.length} checks passed: \`updateserver ${quote(report.stage)}\` has what it needs.`
    : `${failed} of ${report.findings.length} checks failed; fix them and run \`updateserver check ${quote(report.stage)}\` again.`;
  return `${lines.join('\n')}\n\n${summary}\n`;
}

/**
 * Exit 0 when every check passed; 2 when a project file is bad input (a profile, a health-check file,
 * a migration file, the HAProxy template), as for every other command; else 1 when any check failed
 * (the report says which and how to fix it).
 */
export async function runCheck(stage: string, flags: { json?: boolean; offline?: boolean; project?: string; stateDir?: string }): Promise<number> {
  try {
    const report = await checkStage(projectFrom(flags), stage, { offline: flags.offline === true });
    if (flags.json) printJson(report);
    else process.stdout.write(renderCheck(report));
    return report.exitCode;
  } catch (err) {
    return fail(err, flags.json === true);
  }
}
