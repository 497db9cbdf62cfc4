/*
 * `show stat` is CSV with a header line ("# pxname,svname,..."). It is read as real CSV, by column
 * name: a field such as last_chk carries a server's own text and comes quoted when that text holds a
 * comma (`"Service Unavailable, draining"`), and every HAProxy release adds columns, so a naive split
 * or a position shifts every later field. (docs/decisions/0002-own-haproxy-runtime-client.md)
 */

export type StatType = 'frontend' | 'backend' | 'server' | 'listener';

export interface StatRow {
  /** pxname: the frontend or backend. */
  readonly proxy: string;
  /** svname: the server, or FRONTEND / BACKEND for the proxy's own line. */
  readonly server: string;
  readonly type: StatType;
  /** UP, DOWN, DRAIN, MAINT, "UP 1/2", "no check", OPEN, ... */
  readonly status: string;
  /** Current sessions. */
  readonly scur: number;
  /** Requests queued, not yet given to a server. */
  readonly qcur: number;
  readonly weight: number;
  /** check_status, e.g. L4CON, L7OK, L7STS. */
  readonly checkStatus: string;
  /** last_chk: what the last health check said. */
  readonly lastCheck: string;
  /** addr: "address:port" of a server. */
  readonly addr: string;
  /** Every column by its header name, for whatever the typed fields leave out. */
  readonly raw: Readonly<Record<string, string>>;
}

const TYPES: Record<string, StatType> = { '0': 'frontend', '1': 'backend', '2': 'server', '3': 'listener' };

/** Splits CSV text into records of fields: quoted fields may hold commas, doubled quotes and newlines. */
export function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { record.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      record.push(field);
      records.push(record);
      record = [];
      field = '';
    } else field += c;
  }
  if (quoted) throw new Error('unterminated quoted field');
  if (field !== '' || record.length > 0) { record.push(field); records.push(record); }
  return records;
}

function count(raw: Record<string, string>, column: string): number {
  const value = raw[column] ?? '';
  // Columns that do not apply to a line (qcur of a frontend) are empty.
  if (value === '') return 0;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`column ${column} is not a number: ${JSON.stringify(value)}`);
  return n;
}

export function parseShowStat(text: string): StatRow[] {
  if (!text.startsWith('# ')) {
    throw new Error(`expected the "# pxname,svname,..." header, got ${JSON.stringify(text.slice(0, 60))}`);
  }
  const [header, ...records] = parseCsv(text.slice(2));
  const names = header ?? [];
  for (const required of ['pxname', 'svname', 'status', 'scur', 'qcur']) {
    if (!names.includes(required)) throw new Error(`the header has no ${required} column`);
  }
  return records
    .filter((fields) => fields.some((f) => f !== ''))
    .map((fields) => {
      const raw: Record<string, string> = {};
      names.forEach((name, i) => {
        // The header ends with a comma, which makes an empty last name.
        if (name !== '') raw[name] = fields[i] ?? '';
      });
      return {
        proxy: raw.pxname ?? '',
        server: raw.svname ?? '',
        type: TYPES[raw.type ?? ''] ?? typeFromName(raw.svname ?? ''),
        status: raw.status ?? '',
        scur: count(raw, 'scur'),
        qcur: count(raw, 'qcur'),
        weight: count(raw, 'weight'),
        checkStatus: raw.check_status ?? '',
        lastCheck: raw.last_chk ?? '',
        addr: raw.addr ?? '',
        raw,
      };
    });
}

/** Old releases have no type column; their svname tells the same. */
function typeFromName(svname: string): StatType {
  if (svname === 'FRONTEND') return 'frontend';
  if (svname === 'BACKEND') return 'backend';
  return 'server';
}
