/**
 * The one template grammar of every email and notification a company can customise: `{name}`
 * (letters, digits, underscores, case-sensitive). A known variable is replaced; an unknown one
 * stays visible (the reader sees `{foo}`) and is reported, so the operator sees it in the stats
 * rather than a silently emptied sentence.
 */
const VARIABLE = /\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

export function fillTemplate(template: string, vars: Readonly<Record<string, string>>): { text: string; unknown: string[] } {
  const unknown: string[] = [];
  const text = template.replace(VARIABLE, (whole, name: string) => {
    if (Object.prototype.hasOwnProperty.call(vars, name)) return vars[name];
    unknown.push(name);
    return whole;
  });
  return { text, unknown };
}
