/*
 * The smallest template language that renders an HAProxy configuration: {{name}} inserts a value,
 * {{#list}}...{{/list}} repeats its body for each item of a list (looking names up in the item first,
 * then outward). Nothing else, so a template stays readable as HAProxy configuration.
 */
import { ConfigError } from '../errors.js';

export type View = { [key: string]: string | number | View[] | undefined };

export function renderTemplate(template: string, view: View, file = 'template'): string {
  return render(template, [view], file);
}

function lookup(stack: readonly View[], name: string): View[keyof View] {
  for (let i = stack.length - 1; i >= 0; i--) {
    // Only what the view declares: {{constructor}} or {{toString}} is not a value.
    const v = Object.hasOwn(stack[i]!, name) ? stack[i]![name] : undefined;
    if (v !== undefined) return v;
  }
  return undefined;
}

function render(text: string, stack: readonly View[], file: string): string {
  let out = '';
  let rest = text;
  for (;;) {
    const open = /\{\{(#?)([A-Za-z][A-Za-z0-9]*)\}\}/.exec(rest);
    if (!open) return out + rest;
    out += rest.slice(0, open.index);
    rest = rest.slice(open.index + open[0].length);
    const name = open[2]!;
    if (open[1] !== '#') {
      const value = lookup(stack, name);
      if (value === undefined || Array.isArray(value)) throw new ConfigError([{ file, path: '', message: `{{${name}}} is not a value the template can use` }]);
      out += String(value);
      continue;
    }
    const close = `{{/${name}}}`;
    const end = rest.indexOf(close);
    if (end < 0) throw new ConfigError([{ file, path: '', message: `{{#${name}}} has no ${close}` }]);
    // A section tag alone on its line takes its line break with it.
    const body = rest.slice(0, end).replace(/^\n/, '');
    rest = rest.slice(end + close.length).replace(/^\n/, '');
    const list = lookup(stack, name);
    if (!Array.isArray(list)) throw new ConfigError([{ file, path: '', message: `{{#${name}}} is not a list the template can repeat` }]);
    for (const item of list) out += render(body, [...stack, item], file);
  }
}
