/*
 * `updateserver serve`: the console. Every page but sign-in needs a session; anonymous requests are
 * sent to sign in (pages) or refused with 401 (/metrics without a session or the metrics token). A
 * stage a user has no right on does not exist for them (404); an action on a stage they may only view
 * is refused with 403, whatever the page showed. Every POST carries the session's CSRF token.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import type { Project, Stage } from '../config/model.js';
import { describeError } from '../errors.js';
import { withState } from '../state/backend.js';
import { verifyPassword } from './passwords.js';
import { rightOn, type Right, type User } from './users.js';
import { Sessions, csrfMatches, sessionCookie, type Session } from './sessions.js';
import { readPipeline, stagesInOrder } from './pipeline-view.js';
import { historyPage, loginPage, pipelinePage, runPage } from './pages.js';
import { renderMetrics } from './metrics.js';
import { Runs, replayEvents, type ConsoleAction, type RunEvent } from './runs.js';
import { reportPage } from './report-page.js';
import { page, esc } from './html.js';
import { answerFromConsole, ROLLOUT_ANSWER, ROLLOUT_PAGE, rolloutPage, type Reply } from './rollout-actions.js';

export interface ConsoleOptions {
  project: Project;
  users: Map<string, User>;
  /** Mark the session cookie Secure (anything but a loopback-only console, where there is no TLS). */
  secureCookies: boolean;
  /** A bearer token that may read /metrics without a session (a Prometheus scraper). */
  metricsToken?: string;
}

const MAX_BODY = 64 * 1024;

export class Console {
  readonly sessions = new Sessions();
  readonly runs: Runs;
  constructor(private readonly options: ConsoleOptions) {
    this.runs = new Runs(options.project);
  }

  listen(host: string, port: number): Promise<Server> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        // Never a stack trace to the browser: one line, logged here.
        process.stderr.write(`updateserver serve: ${req.method} ${req.url}: ${describeError(err)}\n`);
        if (!res.headersSent) send(res, 500, page('Error', `<p>${esc(describeError(err))}</p>`));
        else res.end();
      });
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve(server));
    });
  }

  private async stages(): Promise<Stage[]> {
    return stagesInOrder(this.options.project);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://console');
    const path = url.pathname;
    if (path === '/login') return this.login(req, res);
    if (path === '/metrics') return this.metrics(req, res);
    const session = this.sessions.find(req.headers.cookie);
    const user = session ? this.options.users.get(session.user) : undefined;
    if (!session || !user) return redirect(res, '/login');
    if (req.method === 'POST') {
      const form = await readForm(req);
      if (!csrfMatches(session, form.get('csrf'))) return send(res, 403, page('Refused', '<p>The form was not sent from this console (missing or wrong CSRF token). Reload the page and try again.</p>'));
      if (path === '/logout') {
        this.sessions.end(session);
        return redirect(res, '/login', sessionCookie(undefined, this.options.secureCookies));
      }
      const m = /^\/stages\/([^/]+)\/(promote|flip|rollback)$/.exec(path);
      if (m) return this.act(res, session, user, decodeURIComponent(m[1]!), m[2] as ConsoleAction, form);
      // A paused rollout's continue/abort (src/serve/rollout-actions.ts).
      const answer = ROLLOUT_ANSWER.exec(path);
      const answering = answer ? await this.visibleStage(user, decodeURIComponent(answer[1]!)) : undefined;
      if (answer && answering) return reply(res, await answerFromConsole(this.options.project, answering, user, session.csrf, answer[2] as 'continue' | 'abort'));
      return send(res, 404, page('Not found', '<p>No such action.</p>', { user: user.name, csrf: session.csrf }));
    }
    if (path === '/') {
      const stages = (await this.stages()).filter((s) => rightOn(user, s.name));
      const views = await readPipeline(this.options.project, stages);
      return send(res, 200, pipelinePage(user.name, session.csrf, views.map((view) => ({ view, right: rightOn(user, view.stage)! }))));
    }
    const hist = /^\/stages\/([^/]+)\/history$/.exec(path);
    if (hist) {
      const stage = await this.visibleStage(user, decodeURIComponent(hist[1]!));
      if (!stage) return send(res, 404, page('Not found', '<p>No such stage.</p>', { user: user.name, csrf: session.csrf }));
      const entries = await withState(this.options.project, stage, (state) => state.store.history(stage.name, 200));
      return send(res, 200, historyPage(user.name, session.csrf, stage.name, entries));
    }
    const changes = /^\/stages\/([^/]+)\/changes\/([A-Za-z0-9][A-Za-z0-9:._-]*)$/.exec(path);
    if (changes) {
      const stage = await this.visibleStage(user, decodeURIComponent(changes[1]!));
      if (!stage) return send(res, 404, page('Not found', '<p>No such stage.</p>', { user: user.name, csrf: session.csrf }));
      return send(res, ...(await reportPage(this.options.project, stage, changes[2]!, user.name, session.csrf)));
    }
    const rollout = ROLLOUT_PAGE.exec(path);
    const rolling = rollout ? await this.visibleStage(user, decodeURIComponent(rollout[1]!)) : undefined;
    if (rollout && rolling) return reply(res, await rolloutPage(this.options.project, rolling, user, session.csrf));
    const run = /^\/runs\/([A-Za-z0-9-]+)(\/events)?$/.exec(path);
    if (run) {
      const rec = this.runs.get(run[1]!);
      if (!rec || !rightOn(user, rec.stage)) return send(res, 404, page('Not found', '<p>No such run.</p>', { user: user.name, csrf: session.csrf }));
      if (run[2]) return events(req, res, rec);
      return send(res, 200, runPage(user.name, session.csrf, rec));
    }
    return send(res, 404, page('Not found', '<p>No such page.</p>', { user: user.name, csrf: session.csrf }));
  }

  private async visibleStage(user: User, name: string): Promise<Stage | undefined> {
    return (await this.stages()).find((s) => s.name === name && rightOn(user, s.name) !== undefined);
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'POST') return send(res, 200, loginPage());
    const form = await readForm(req);
    const name = form.get('user') ?? '';
    const user = this.options.users.get(name);
    // Verified even for an unknown name: the answer takes as long either way.
    const ok = await verifyPassword(form.get('password') ?? '', user?.passwordHash);
    if (!ok || !user) return send(res, 401, loginPage('Unknown user or wrong password.'));
    const session = this.sessions.create(user.name);
    return redirect(res, '/', sessionCookie(session, this.options.secureCookies));
  }

  private async act(res: ServerResponse, session: Session, user: User, stageName: string, action: ConsoleAction, form: URLSearchParams): Promise<void> {
    const stage = await this.visibleStage(user, stageName);
    if (!stage) return send(res, 404, page('Not found', '<p>No such stage.</p>', { user: user.name, csrf: session.csrf }));
    const right: Right | undefined = rightOn(user, stage.name);
    if (right !== 'release') return send(res, 403, page('Refused', `<p>${esc(user.name)} may view ${esc(stage.name)} but not release to it.</p>`, { user: user.name, csrf: session.csrf }));
    const services = form.getAll('service').filter((s) => Object.hasOwn(stage.services, s));
    const rec = this.runs.start({ stage: stage.name, action, dryRun: form.get('dry') === '1', user: user.name, services });
    return redirect(res, `/runs/${rec.id}`);
  }

  private async metrics(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const session = this.sessions.find(req.headers.cookie);
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const token = this.options.metricsToken;
    const tokenOk = token !== undefined && bearer !== undefined && equalHashes(bearer, token);
    const user = session ? this.options.users.get(session.user) : undefined;
    if (!user && !tokenOk) {
      res.writeHead(401, { 'content-type': 'text/plain; charset=utf-8', 'www-authenticate': 'Bearer' });
      res.end('sign in, or send the metrics token as a bearer token\n');
      return;
    }
    // A signed-in user sees the stages they may see; the scraper's token sees all.
    const stages = (await this.stages()).filter((s) => tokenOk || (user && rightOn(user, s.name)));
    const views = await readPipeline(this.options.project, stages);
    const histories = await Promise.all(stages.map((s) => withState(this.options.project, s, (state) => state.store.history(s.name, 100_000))));
    const body = renderMetrics(views.map((view, i) => ({ view, history: histories[i]!, timings: this.runs.lastTimings.get(view.stage) })));
    res.writeHead(200, { 'content-type': 'application/openmetrics-text; version=1.0.0; charset=utf-8', 'cache-control': 'no-store' });
    res.end(body);
  }
}

function equalHashes(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

const SECURITY_HEADERS = {
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'x-frame-options': 'DENY', 'cache-control': 'no-store',
};

function send(res: ServerResponse, status: number, html: string): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', ...SECURITY_HEADERS });
  res.end(html);
}

const reply = (res: ServerResponse, r: Reply): void => send(res, r.status, r.html);

function redirect(res: ServerResponse, to: string, cookie?: string): void {
  res.writeHead(303, { location: to, ...SECURITY_HEADERS, ...(cookie ? { 'set-cookie': cookie } : {}) });
  res.end();
}

function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => {
      body += d;
      if (body.length > MAX_BODY) { reject(new Error('form too large')); req.destroy(); }
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function events(req: IncomingMessage, res: ServerResponse, rec: ReturnType<Runs['get']> & object): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-content-type-options': 'nosniff' });
  const write = (e: RunEvent) => res.write(`data: ${JSON.stringify(e)}\n\n`);
  for (const e of replayEvents(rec)) write(e);
  if (rec.summary !== undefined) {
    res.end();
    return;
  }
  const listener = (e: RunEvent) => { write(e); if (e.type === 'end') res.end(); };
  rec.listeners.add(listener);
  req.on('close', () => rec.listeners.delete(listener));
}

export const newToken = (): string => randomBytes(24).toString('base64url');
