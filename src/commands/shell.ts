/** Quotes one word for a POSIX shell. Safe for any input, including quotes and newlines. */
export function quote(word: string): string {
  if (/^[A-Za-z0-9_./:=@%+,-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

export function quoteAll(words: readonly string[]): string {
  return words.map(quote).join(' ');
}
