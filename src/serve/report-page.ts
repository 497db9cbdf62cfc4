/*
 * /stages/<stage>/changes/<run id>: one rollback's written-data report (docs/decisions/0015). The report
 * file under the local state directory has every change with its rows; where it is not (the run ran on
 * another machine sharing the PostgreSQL state store), the run's history line still has the counts and
 * the primary keys, and the page says where the rows are.
 */
import type { Project, Stage } from '../config/model.js';
import { readReport, type ChangeReport } from '../data/changes/report.js';
import { withState } from '../state/backend.js';
import { esc, page } from './html.js';
import { reportHtml } from './report-view.js';

export async function reportPage(project: Project, stage: Stage, runId: string, user: string, csrf: string): Promise<[number, string]> {
  const title = `What the slot left behind took: ${stage.name}, run ${runId}`;
  let report: ChangeReport | undefined = await readReport(project.stateDir, stage.name, runId).catch(() => undefined);
  const withRows = report !== undefined;
  if (!report) {
    const history = await withState(project, stage, (state) => state.store.history(stage.name, 100_000));
    report = history.find((e) => e.changes?.runId === runId)?.changes;
  }
  if (!report || report.stage !== stage.name) return [404, page('Not found', `<p>No written-data report of ${esc(stage.name)} for run ${esc(runId)}.</p>`, { user, csrf })];
  const head = `<p>${esc(report.action)} at ${esc(report.at)} · <a href="/stages/${esc(encodeURIComponent(stage.name))}/history">history of ${esc(stage.name)}</a></p>`;
  return [200, page(title, head + reportHtml(report, withRows), { user, csrf })];
}
