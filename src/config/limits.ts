/*
 * What a configuration file may cost to read. A profile of fifty hosts is a few kilobytes; these
 * bounds are far above any real file and keep a hostile or broken one (a generated 20 MB map, an
 * alias bomb, a thousand levels of nesting) to a second of work and a screenful of errors.
 */

/** Largest profile or health-check file read, in bytes. Validation time grows linearly up to it (bench/validate.ts): about a second at the bound. */
export const MAX_FILE_BYTES = 256 * 1024;
/** Deepest nesting of maps and lists: the formats need 6; anything far deeper is a mistake or an attack. */
export const MAX_DEPTH = 32;
/** Alias uses allowed while a file is turned into data (the yaml library's guard against expansion bombs). */
export const MAX_ALIASES = 100;
/** Problems printed for one refusal; the rest are counted. */
export const MAX_SHOWN_ISSUES = 20;
