/*
 * HTML for the console, server-rendered with no library: every value escaped on the way in, one small
 * stylesheet (readable on a laptop and a phone, contrast above WCAG AA, visible keyboard focus), and one
 * small script on the run page only (live updates by server-sent events; without it, the page refreshes).
 */
export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]!));
}

const STYLE = `
body{font:16px/1.5 system-ui,sans-serif;margin:0;color:#111;background:#fff}
header{background:#0b3d91;color:#fff;padding:.5rem 1rem;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
header a{color:#fff}
main{padding:1rem;max-width:80rem}
a{color:#0b3d91}
:focus-visible{outline:3px solid #b35c00;outline-offset:2px}
table{border-collapse:collapse;width:100%;margin-bottom:1rem}
th,td{border:1px solid #767676;padding:.3rem .5rem;text-align:left;vertical-align:top}
caption{text-align:left;font-weight:bold;font-size:1.15rem;padding:.3rem 0}
.live{font-weight:bold}
.bad{color:#a4000f}
.incoming{background:#fff3cd}
.ok{color:#0a6b2c}
form.inline{display:inline}
button{font:inherit;padding:.25rem .75rem;border:1px solid #0b3d91;background:#0b3d91;color:#fff;border-radius:3px;cursor:pointer}
button.secondary{background:#fff;color:#0b3d91}
label{display:block;margin:.5rem 0 .2rem}
input[type=text],input[type=password]{font:inherit;padding:.3rem;width:16rem;max-width:100%}
.readonly{color:#555;font-style:italic}
pre{background:#f4f4f4;padding:.5rem;overflow:auto}
li.begin{color:#0b3d91} li.end{color:#0a6b2c} li.fail{color:#a4000f}
td.ro-failed{color:#a4000f} td.ro-passed{color:#0a6b2c} td.ro-paused{color:#7a4a00;font-weight:bold} table.counts td{text-align:right} summary{cursor:pointer} td code{word-break:break-all}
@media (max-width:40rem){th,td{display:block;border:0;border-bottom:1px solid #767676}}
`;

export function page(title: string, body: string, opts: { user?: string; csrf?: string; script?: string } = {}): string {
  const nav = opts.user
    ? `<nav aria-label="main"><a href="/">Pipeline</a></nav><span>Signed in as <strong>${esc(opts.user)}</strong></span>
       <form class="inline" method="post" action="/logout"><input type="hidden" name="csrf" value="${esc(opts.csrf)}"><button class="secondary" type="submit">Sign out</button></form>`
    : '';
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${esc(title)} · updateserver</title><style>${STYLE}</style></head>
<body><header><strong>updateserver</strong>${nav}</header><main id="main"><h1>${esc(title)}</h1>${body}</main>${opts.script ? `<script>${opts.script}</script>` : ''}</body></html>`;
}
