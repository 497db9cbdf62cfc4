/*
 * The console's pages: sign-in, the pipeline, one stage's history, one run. Actions are forms that
 * POST with the session's CSRF token; a stage the user may only view shows no action at all (and the
 * server refuses the action anyway, see server.ts).
 */
import type { HistoryEntry } from '../state/store.js';
import type { Right } from './users.js';
import type { StageView } from './pipeline-view.js';
import { esc, page } from './html.js';
import type { RunRecord } from './runs.js';
import { historyChanges, reportHtml } from './report-view.js';
import { rolloutTable } from './rollout-view.js';

export function loginPage(error?: string): string {
  return page('Sign in', `${error ? `<p class="bad" role="alert">${esc(error)}</p>` : ''}
<form method="post" action="/login">
<label for="user">User</label><input id="user" name="user" type="text" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<p><button type="submit">Sign in</button></p></form>`);
}

function actions(stage: StageView, csrf: string): string {
  const hidden = `<input type="hidden" name="csrf" value="${esc(csrf)}">`;
  const services = stage.services.map((s) => `<label><input type="checkbox" name="service" value="${esc(s.service)}"> only ${esc(s.service)}</label>`).join('');
  return `<form method="post" action="/stages/${esc(stage.stage)}/promote">${hidden}
<fieldset><legend>Promote ${esc(stage.from ?? 'the source')} into ${esc(stage.stage)}</legend>${stage.services.length > 1 ? services : ''}
<button type="submit" name="dry" value="1" class="secondary">Dry run</button> <button type="submit">Promote</button></fieldset></form>
<form class="inline" method="post" action="/stages/${esc(stage.stage)}/flip">${hidden}<button type="submit" class="secondary">Flip</button></form>
<form class="inline" method="post" action="/stages/${esc(stage.stage)}/rollback">${hidden}<button type="submit" class="secondary">Roll back</button></form>`;
}

export function pipelinePage(user: string, csrf: string, stages: ReadonlyArray<{ view: StageView; right: Right }>): string {
  const body = stages.map(({ view, right }) => {
    const rows = view.services.map((s) => `<tr${s.incoming ? ' class="incoming"' : ''}>
<th scope="row">${esc(s.service)}</th>
${s.slots.map((x) => `<td${x.slot === s.live ? ' class="live"' : ''}>${x.slot === s.live ? 'live: ' : ''}slot ${esc(x.slot)}: ${esc(x.release ?? '(empty)')}${x.data ? `<br>data ${esc(x.data)}` : ''}${x.bad ? `<br><span class="bad">marked bad: ${esc(x.bad)}</span>` : ''}</td>`).join('')}
<td>${s.incoming ? `a promotion would bring <strong>${esc(s.incoming)}</strong>` : 'up to date'}</td></tr>`).join('');
    const last = view.lastRun ? `${esc(view.lastRun.action)} ${esc(view.lastRun.result)} by ${esc(view.lastRun.user)} at ${esc(view.lastRun.at)}` : 'none';
    return `<section aria-labelledby="st-${esc(view.stage)}"><table>
<caption id="st-${esc(view.stage)}">${esc(view.stage)}${view.from ? ` (from ${esc(view.from)})` : ''}</caption>
<thead><tr><th scope="col">service</th><th scope="col">slot a</th><th scope="col">slot b</th><th scope="col">next promotion</th></tr></thead>
<tbody>${rows}</tbody></table>
<p>Lock: ${view.lock ? esc(view.lock) : 'free'} · Last run: ${last} · <a href="/stages/${esc(view.stage)}/history">history</a></p>
${view.rollout ? `<p class="${view.rollout.state === 'paused' ? 'bad' : ''}">Rollout of ${esc(view.rollout.service)}: ${view.rollout.state === 'paused' ? '<strong>paused</strong> at' : 'at'} step ${esc(view.rollout.step)} of ${esc(view.rollout.steps)} (${esc(view.rollout.weight)}% to the new slot) · <a href="/stages/${esc(view.stage)}/rollout">${view.rollout.state === 'paused' && right === 'release' ? 'continue or abort it' : 'where it stands'}</a></p>` : ''}
${right === 'release' ? actions(view, csrf) : '<p class="readonly">You may view this stage, not release to it.</p>'}</section>`;
  }).join('\n');
  return page('Pipeline', body || '<p>No stage you may see.</p>', { user, csrf });
}

export function historyPage(user: string, csrf: string, stage: string, entries: readonly HistoryEntry[]): string {
  const rows = [...entries].reverse().map((e) => `<tr><td>${esc(e.at)}</td><td>${esc(e.action)}</td><td class="${e.result === 'ok' ? 'ok' : 'bad'}">${esc(e.result)}</td><td>${esc(e.user)}</td>
<td>${Object.entries(e.services).map(([s, x]) => `${esc(s)} ${esc(x.from)}→${esc(x.to)} ${esc(x.release)}`).join('<br>')}${e.message ? `<pre>${esc(e.message)}</pre>` : ''}${e.changes ? historyChanges(e.changes) : ''}</td><td>${esc(e.durationMs)} ms</td></tr>`).join('');
  return page(`History of ${stage}`, `<table><caption>Latest runs first</caption><thead><tr><th scope="col">at</th><th scope="col">action</th><th scope="col">result</th><th scope="col">user</th><th scope="col">what</th><th scope="col">time</th></tr></thead><tbody>${rows}</tbody></table>`, { user, csrf });
}

const LIVE = `const list=document.getElementById('steps');const state=document.getElementById('state');
const es=new EventSource(location.pathname+'/events');
es.onmessage=(m)=>{const e=JSON.parse(m.data);if(e.type==='step'){const li=document.createElement('li');li.className=e.state;li.textContent=e.phase+' ['+e.target+'] '+e.title+': '+e.state+(e.error?' ('+e.error+')':'');list.appendChild(li);}
else if(e.type==='rollout'){const id='ro-'+e.service.replace(/[^A-Za-z0-9_-]/g,'_')+'-'+e.step;let tr=document.getElementById(id);
if(!tr){let t=document.getElementById('rollout');if(!t){t=document.createElement('table');t.id='rollout';t.createCaption().textContent='Traffic split during the rollout';const h=t.createTHead().insertRow();for(const c of ['step','new slot','old slot','state','gate figures']){const th=document.createElement('th');th.scope='col';th.textContent=c;h.appendChild(th);}t.createTBody();document.getElementById('rollout-box').appendChild(t);}
tr=t.tBodies[0].insertRow();tr.id=id;tr.appendChild(document.createElement('th')).scope='row';for(let i=0;i<4;i++)tr.insertCell();tr.cells[1].className='weight';tr.cells[4].className='figures';}
tr.cells[0].textContent=e.service+' step '+e.step;tr.cells[1].textContent=e.weight+'%';tr.cells[2].textContent=(100-e.weight)+'%';tr.cells[3].className='ro-'+e.state;tr.cells[3].textContent=e.state+(e.verdict?' ('+e.verdict+')':'');tr.cells[4].textContent=e.figuresText||'';}
else if(e.type==='end'){state.textContent=e.summary;es.close();
if(e.report)fetch(location.pathname).then((r)=>r.text()).then((h)=>{const d=new DOMParser().parseFromString(h,'text/html');const n=d.getElementById('report');if(n)document.getElementById('report').replaceWith(n);});}};`;

export function runPage(user: string, csrf: string, run: RunRecord): string {
  const steps = run.events.map((e) => `<li class="${esc(e.state)}">${esc(e.phase)} [${esc(e.target)}] ${esc(e.title)}: ${esc(e.state)}${e.error ? ` (${esc(e.error)})` : ''}</li>`).join('');
  return page(`${run.action} ${run.stage}${run.dryRun ? ' (dry run)' : ''}`, `<p>Started by ${esc(run.user)} at ${esc(run.startedAt)}.</p>
<p role="status" id="state">${esc(run.summary ?? 'running…')}</p>
${run.planText ? `<details${run.dryRun ? ' open' : ''}><summary>The plan</summary><pre>${esc(run.planText)}</pre></details>` : ''}
<div id="rollout-box" aria-live="polite">${rolloutTable(run.rollout ?? [])}</div>
<div id="report">${run.report ? `<h2>What the slot left behind took</h2>${reportHtml(run.report, true, 3)}` : ''}</div>
<h2>Steps</h2><ol id="steps" aria-live="polite">${steps}</ol>`, { user, csrf, ...(run.summary === undefined ? { script: LIVE } : {}) });
}
