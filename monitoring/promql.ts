// Which metrics a PromQL expression reads, so the dashboard and alerts can be checked
// against what the programs really export. Histogram series (_bucket, _sum, _count) map to
// the histogram's own name.
const FUNCTION_OR_KEYWORD =
  /^(sum|max|min|avg|count|rate|increase|irate|histogram_quantile|by|without|on|ignoring|group_left|group_right|or|and|unless|vector|absent|humanize\w*)$/;

export function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"[^"]*"/g, '""');
  const names = new Set<string>();
  for (const match of withoutStrings.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const token = match[0];
    if (!token.startsWith('ipcontroller_') || FUNCTION_OR_KEYWORD.test(token)) continue;
    names.add(token.replace(/_(bucket|sum|count)$/, ''));
  }
  return [...names].sort();
}

export interface PanelQueries {
  title: string;
  exprs: string[];
}

interface DashboardJson {
  panels?: { title?: string; targets?: { expr?: string }[] }[];
}

export function dashboardQueries(dashboard: DashboardJson): PanelQueries[] {
  return (dashboard.panels ?? []).map((p) => ({
    title: p.title ?? '(untitled)',
    exprs: (p.targets ?? []).map((t) => t.expr ?? '').filter(Boolean),
  }));
}

interface RuleFile {
  groups?: { rules?: { alert?: string; record?: string; expr?: string }[] }[];
}

export function ruleQueries(rules: RuleFile): PanelQueries[] {
  return (rules.groups ?? []).flatMap((g) =>
    (g.rules ?? []).map((r) => ({ title: r.alert ?? r.record ?? '(rule)', exprs: r.expr ? [r.expr] : [] })),
  );
}
