import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parseCsv, parseShowStat } from '../../src/lb/stat.js';

/*
 * `show stat` captured from HAProxy 2.6.12 (Debian 2.6.12-1+deb12u4): backend web_a's server answers
 * its health check "HTTP/1.1 503 Service Unavailable, draining", so last_chk comes quoted with a comma.
 * The reply ends with the empty line HAProxy sends after every answer.
 */
const SHOW_STAT_2_6 = [
  '# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,h1_spliced_bytes_in,h1_spliced_bytes_out,',
  'web,FRONTEND,,,0,0,9985,0,0,0,0,0,0,,,,,OPEN,,,,,,,,,1,2,0,,,,0,0,0,0,,,,0,0,0,0,0,0,,0,0,0,,,0,0,0,0,,,,,,,,,,,,,,,,,,,,,http,,0,0,0,0,0,0,0,,,0,0,,,,,,,0,,,,,,,,,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,',
  'web_a,app1,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,1,1,0,1,1,14,14,,1,3,1,,0,,2,0,,0,L7STS,503,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,"Service Unavailable, draining",,0,0,0,0,,,,Layer7 wrong status,,2,3,0,,,,127.0.8.11:18081,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,1,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,',
  'web_a,BACKEND,0,0,0,0,1,0,0,0,0,0,,0,0,0,0,DOWN,0,0,0,,1,14,14,,1,3,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,0,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,15,15,1575,360,0,0,',
  'web_b,app1,0,0,0,0,,0,0,0,,0,,0,0,0,0,no check,1,1,0,,,15,,,1,4,1,,0,,2,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,,,,,-1,,,0,0,0,0,,,,,,,,,,,,127.0.8.12:18082,,http,,,,,,,,0,0,0,,,0,,0,0,0,0,0,0,0,0,0,1,,,,-,0,0,0,,,,,,,,,,,,,,,,,,,,,,',
  'web_b,BACKEND,0,0,0,0,1,0,0,0,0,0,,0,0,0,0,UP,1,1,0,,0,15,0,,1,4,0,,0,,1,0,,0,,,,0,0,0,0,0,0,,,,0,0,0,0,0,0,0,-1,,,0,0,0,0,,,,,,,,,,,,,,http,roundrobin,,,,,,,0,0,0,0,0,,,0,0,0,0,0,,,,,1,0,0,0,-,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,',
  ''
].join('\n') + '\n';

describe('parseShowStat', () => {
  test('reads a real 2.6 reply by column name, a quoted field with a comma shifting nothing', () => {
    const rows = parseShowStat(SHOW_STAT_2_6);
    assert.deepEqual(rows.map((r) => [r.proxy, r.server, r.type, r.status]), [
      ['web', 'FRONTEND', 'frontend', 'OPEN'],
      ['web_a', 'app1', 'server', 'DOWN'],
      ['web_a', 'BACKEND', 'backend', 'DOWN'],
      ['web_b', 'app1', 'server', 'no check'],
      ['web_b', 'BACKEND', 'backend', 'UP'],
    ]);
    const app1 = rows[1];
    assert.ok(app1);
    assert.equal(app1.lastCheck, 'Service Unavailable, draining');
    assert.equal(app1.checkStatus, 'L7STS');
    // The columns after the quoted one: a naive split(',') gets these wrong.
    assert.equal(app1.raw.check_desc, 'Layer7 wrong status');
    assert.equal(app1.addr, '127.0.8.11:18081');
    assert.equal(app1.raw.mode, 'http');
    assert.equal(app1.raw.h1_spliced_bytes_out, '');
    assert.equal(app1.weight, 1);
    assert.equal(app1.scur, 0);
    assert.equal(app1.qcur, 0);
  });

  test('columns that do not apply (qcur of a frontend) read as 0; the raw record keeps every named column', () => {
    const [frontend] = parseShowStat(SHOW_STAT_2_6);
    assert.ok(frontend);
    assert.equal(frontend.qcur, 0);
    assert.equal(frontend.raw.qcur, '');
    assert.equal(frontend.raw.slim, '9985');
    assert.equal(Object.keys(frontend.raw).length, 128);
    assert.equal(Object.hasOwn(frontend.raw, ''), false);
  });

  test('never depends on column positions: reordered and unknown columns read the same', () => {
    const text = '# svname,future_column,qcur,pxname,status,scur,last_chk,\n'
      + 'h1,"x,y",2,web_a,DRAIN,5,"said ""no"", twice",\n'
      + 'BACKEND,,1,web_a,UP,5,,\n';
    const rows = parseShowStat(text);
    assert.deepEqual(rows.map((r) => [r.proxy, r.server, r.type, r.status, r.scur, r.qcur, r.lastCheck]), [
      ['web_a', 'h1', 'server', 'DRAIN', 5, 2, 'said "no", twice'],
      ['web_a', 'BACKEND', 'backend', 'UP', 5, 1, ''],
    ]);
    assert.equal(rows[0]?.raw.future_column, 'x,y');
  });

  test('refuses what is not show stat output', () => {
    assert.throws(() => parseShowStat('Permission denied\n\n'), /expected the "# pxname,svname,..." header/);
    assert.throws(() => parseShowStat('# pxname,svname,status\nweb,FRONTEND,OPEN\n'), /no scur column/);
    assert.throws(() => parseShowStat('# pxname,svname,status,scur,qcur\nweb,h1,UP,many,0\n'), /column scur is not a number: "many"/);
  });
});

describe('parseCsv', () => {
  test('quoted fields keep commas, doubled quotes and line breaks', () => {
    assert.deepEqual(parseCsv('a,"b,c","d""e"\r\n"f\ng",,\n'), [['a', 'b,c', 'd"e'], ['f\ng', '', '']]);
  });

  test('an unterminated quote is an error, not a silent merge of lines', () => {
    assert.throws(() => parseCsv('a,"b\nc,d\n'), /unterminated quoted field/);
  });
});
