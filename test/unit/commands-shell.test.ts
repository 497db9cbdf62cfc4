import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { quote, quoteAll } from '../../src/commands/shell.js';
import { spawnSync } from 'node:child_process';

/** What bash makes of a quoted word: printf %s prints it back byte for byte. */
function bash(script: string): string {
  const result = spawnSync('bash', ['-c', script], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

function throughBash(quoted: string): string {
  return bash(`printf %s ${quoted}`);
}

const AWKWARD = [
  '',
  ' ',
  "'",
  "''",
  "it's",
  "'leading and trailing'",
  'a\nb',
  '\n',
  'two words',
  '"double"',
  '$HOME',
  '${PATH}',
  '`id`',
  '$(id)',
  'a;b',
  'a|b&c',
  '*',
  '?',
  '[a]',
  '~',
  '~/x',
  '#comment',
  'tab\there',
  'back\\slash',
  '!event',
  'a>b<c',
  '-n',
  '--help',
  'émoji ✓',
  "mixed '\"$`\\\n",
];

describe('quote', () => {
  test('leaves safe words bare', () => {
    for (const w of ['web', '8080', '/srv/web/releases/2026.11.22-223104-1.0.0-3fa9c2d1', 'a=b', 'u@h:/p', '50%', 'x+y,z', 'a-b_c']) {
      assert.equal(quote(w), w);
    }
  });

  test('single-quotes everything else, closing and escaping inner single quotes', () => {
    assert.equal(quote(''), "''");
    assert.equal(quote('two words'), "'two words'");
    assert.equal(quote("it's"), "'it'\\''s'");
    assert.equal(quote('a\nb'), "'a\nb'");
    assert.equal(quote('$HOME'), "'$HOME'");
    assert.equal(quote('~'), "'~'");
    assert.equal(quote('*'), "'*'");
  });

  for (const word of AWKWARD) {
    test(`round-trips ${JSON.stringify(word)} through bash -c 'printf %s ...'`, () => {
      assert.equal(throughBash(quote(word)), word);
    });
  }

  test('a quoted word stays one argument', () => {
    const words = ['a b', "c'd", '', 'e\nf', '$(g)'];
    assert.equal(bash(`printf '<%s>' ${quoteAll(words)}`), words.map((w) => `<${w}>`).join(''));
  });
});

describe('quoteAll', () => {
  test('quotes each word and joins with spaces', () => {
    assert.equal(quoteAll(['ssh', '-o', 'UserKnownHostsFile=/a b', "it's", '']), "ssh -o 'UserKnownHostsFile=/a b' 'it'\\''s' ''");
    assert.equal(quoteAll([]), '');
  });
});
