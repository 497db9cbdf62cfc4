/*
 * Bundles the command line (tsc's output under dist/src) into dist/bin/: the `updateserver` command.
 * Why: Node 20's ES module loader spent about 200 ms of every command's start resolving and reading
 * some 390 files (zod alone brings 99, most of them locales never used); one tree-shaken file per
 * lazily loaded part starts in a fraction of that (docs/decisions/0008-bundled-command.md). tsc stays
 * the type checker and the tests keep importing dist/src; the integration tests run the bundle, the
 * thing users run.
 */
import { build, type Plugin } from 'esbuild';
import { chmod, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PACKAGE_DIR } from '../src/package-dir.js';

const outdir = join(PACKAGE_DIR, 'dist', 'bin');

/**
 * zod re-exports all of its ~50 message locales as a namespace (`z.locales`), which keeps every one of
 * them in the bundle (~300 KB of the ~1 MB a promotion loads before its first connection) although only
 * English, which zod imports itself, is ever used. The barrel is replaced by English alone (issue 17).
 */
const zodEnglishOnly: Plugin = {
  name: 'zod-english-only',
  setup(b) {
    b.onResolve({ filter: /\/locales\/index\.js$/ }, (args) => (/[\\/]zod[\\/]/.test(args.importer) ? { path: join(dirname(args.importer), '..', 'locales', 'index.js'), namespace: 'zod-locales' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'zod-locales' }, (args) => ({ contents: `export { default as en } from ${JSON.stringify(join(dirname(args.path), 'en.js'))};`, resolveDir: dirname(args.path) }));
  },
};
await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: { updateserver: join(PACKAGE_DIR, 'dist', 'src', 'cli', 'main.js') },
  outdir,
  bundle: true,
  // The commands, database drivers and got are imported when used: each stays a chunk of its own.
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunks/[name]-[hash]',
  // ssh2 stays a package of its own: bundled, it could no longer find its native crypto add-on
  // (sshcrypto.node) and every SSH round trip got slower; as CommonJS it loads quickly anyway.
  external: ['ssh2'],
  plugins: [zodEnglishOnly],
  // CommonJS dependencies (ssh2, pg) call require() for Node's own modules, and ssh2's
  // poly1305 (emscripten) reads __dirname: both exist in CommonJS only, so each chunk defines them.
  banner: {
    js: [
      "import { createRequire as __usCreateRequire } from 'node:module';",
      "import { fileURLToPath as __usFileURLToPath } from 'node:url';",
      "import { dirname as __usDirname } from 'node:path';",
      'const require = __usCreateRequire(import.meta.url);',
      'const __filename = __usFileURLToPath(import.meta.url);',
      'const __dirname = __usDirname(__filename);',
    ].join(' '),
  },
  minifyWhitespace: true,
  minifySyntax: true,
  legalComments: 'none',
  logLevel: 'warning',
});
await chmod(join(outdir, 'updateserver.js'), 0o755);
