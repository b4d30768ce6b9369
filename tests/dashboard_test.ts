/**
 * The Grafana dashboard in docs/grafana-dashboard.json: every PromQL
 * expression parses, and every metric it queries is one that a relay with
 * WebTransport and federation on exports at /metrics.
 */

import assert from "node:assert/strict";
import { startTestRelay } from "./helpers.ts";

const DASHBOARD_PATH = new URL(
  "../docs/grafana-dashboard.json",
  import.meta.url,
);

/** Suffixes of the series a histogram exports. */
const HISTOGRAM_SUFFIXES = ["_bucket", "_sum", "_count"];

const AGGREGATIONS = new Set([
  "sum",
  "avg",
  "min",
  "max",
  "count",
  "group",
  "stddev",
  "stdvar",
  "topk",
  "bottomk",
  "quantile",
  "count_values",
]);

const FUNCTIONS = new Set([
  "abs",
  "absent",
  "avg_over_time",
  "ceil",
  "changes",
  "clamp_max",
  "clamp_min",
  "count_over_time",
  "delta",
  "deriv",
  "floor",
  "histogram_quantile",
  "idelta",
  "increase",
  "irate",
  "label_replace",
  "max_over_time",
  "min_over_time",
  "rate",
  "resets",
  "round",
  "scalar",
  "sort",
  "sort_desc",
  "sum_over_time",
  "time",
  "timestamp",
  "vector",
]);

const BINARY_OPERATORS = new Set([
  "+",
  "-",
  "*",
  "/",
  "%",
  "^",
  "==",
  "!=",
  "<=",
  ">=",
  "<",
  ">",
  "and",
  "or",
  "unless",
]);

type TokenKind =
  | "identifier"
  | "number"
  | "string"
  | "duration"
  | "punctuation"
  | "operator";

interface Token {
  kind: TokenKind;
  text: string;
  at: number;
}

const TOKEN_PATTERNS: [TokenKind, RegExp][] = [
  ["string", /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/y],
  // A Grafana variable such as $__rate_interval stands for a duration.
  ["duration", /\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|[0-9]+(?:ms|[smhdwy])/y],
  ["number", /[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?/y],
  ["identifier", /[A-Za-z_:][A-Za-z0-9_:]*/y],
  ["operator", /=~|!~|==|!=|<=|>=|[-+*/%^<>=]/y],
  ["punctuation", /[(){}[\],]/y],
];

/** Splits a PromQL expression into tokens; throws on anything else. */
function tokenize(expr: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  while (at < expr.length) {
    if (/\s/.test(expr[at]!)) {
      at++;
      continue;
    }
    let matched = false;
    for (const [kind, pattern] of TOKEN_PATTERNS) {
      pattern.lastIndex = at;
      const match = pattern.exec(expr);
      if (match === null) continue;
      tokens.push({ kind, text: match[0], at });
      at += match[0].length;
      matched = true;
      break;
    }
    if (!matched) {
      throw new SyntaxError(`Unexpected "${expr[at]}" at ${at} in ${expr}`);
    }
  }
  return tokens;
}

/**
 * A recursive-descent parser for the PromQL the dashboard uses: vector
 * selectors with matchers, range selectors, function calls, aggregations
 * with `by`/`without`, and binary operators with `on`/`ignoring`. It
 * collects the metric name of every selector.
 */
class PromQlParser {
  readonly metrics = new Set<string>();
  readonly #tokens: Token[];
  readonly #expr: string;
  #index = 0;

  constructor(expr: string) {
    this.#expr = expr;
    this.#tokens = tokenize(expr);
  }

  parse(): void {
    this.#expression();
    const extra = this.#peek();
    if (extra !== undefined) this.#fail(extra, "end of expression");
  }

  #expression(): void {
    this.#unary();
    for (;;) {
      const token = this.#peek();
      if (token === undefined || !BINARY_OPERATORS.has(token.text)) return;
      this.#index++;
      if (this.#peek()?.text === "bool") this.#index++;
      const modifier = this.#peek()?.text;
      if (modifier === "on" || modifier === "ignoring") {
        this.#index++;
        this.#labelList();
        const group = this.#peek()?.text;
        if (group === "group_left" || group === "group_right") {
          this.#index++;
          if (this.#peek()?.text === "(") this.#labelList();
        }
      }
      this.#unary();
    }
  }

  #unary(): void {
    const sign = this.#peek()?.text;
    if (sign === "-" || sign === "+") this.#index++;
    this.#primary();
    if (this.#peek()?.text === "[") this.#range();
    if (this.#peek()?.text === "offset") {
      this.#index++;
      this.#expect("duration");
    }
  }

  #primary(): void {
    const token = this.#next("an expression");
    if (token.kind === "number" || token.kind === "string") return;
    if (token.text === "(") {
      this.#expression();
      this.#expectText(")");
      return;
    }
    if (token.text === "{") {
      this.#index--;
      this.#matchers();
      return;
    }
    if (token.kind !== "identifier") this.#fail(token, "an expression");

    if (AGGREGATIONS.has(token.text)) {
      this.#aggregation();
      return;
    }
    if (this.#peek()?.text === "(") {
      if (!FUNCTIONS.has(token.text)) {
        this.#fail(token, "a known PromQL function");
      }
      this.#arguments();
      return;
    }

    this.metrics.add(token.text);
    if (this.#peek()?.text === "{") this.#matchers();
  }

  #aggregation(): void {
    const grouping = () => {
      const word = this.#peek()?.text;
      if (word !== "by" && word !== "without") return false;
      this.#index++;
      this.#labelList();
      return true;
    };
    const before = grouping();
    this.#arguments();
    if (!before) grouping();
  }

  #arguments(): void {
    this.#expectText("(");
    if (this.#peek()?.text === ")") {
      this.#index++;
      return;
    }
    for (;;) {
      this.#expression();
      const token = this.#next('"," or ")"');
      if (token.text === ")") return;
      if (token.text !== ",") this.#fail(token, '"," or ")"');
    }
  }

  #labelList(): void {
    this.#expectText("(");
    if (this.#peek()?.text === ")") {
      this.#index++;
      return;
    }
    for (;;) {
      this.#expect("identifier");
      const token = this.#next('"," or ")"');
      if (token.text === ")") return;
      if (token.text !== ",") this.#fail(token, '"," or ")"');
    }
  }

  #matchers(): void {
    this.#expectText("{");
    if (this.#peek()?.text === "}") {
      this.#index++;
      return;
    }
    for (;;) {
      this.#expect("identifier");
      const operator = this.#next("a matcher operator");
      if (!["=", "!=", "=~", "!~"].includes(operator.text)) {
        this.#fail(operator, "a matcher operator");
      }
      this.#expect("string");
      const token = this.#next('"," or "}"');
      if (token.text === "}") return;
      if (token.text !== ",") this.#fail(token, '"," or "}"');
    }
  }

  #range(): void {
    this.#expectText("[");
    this.#expect("duration");
    this.#expectText("]");
  }

  #peek(): Token | undefined {
    return this.#tokens[this.#index];
  }

  #next(expected: string): Token {
    const token = this.#tokens[this.#index++];
    if (token === undefined) {
      throw new SyntaxError(`Expected ${expected} at the end of ${this.#expr}`);
    }
    return token;
  }

  #expect(kind: TokenKind): Token {
    const token = this.#next(`a ${kind}`);
    if (token.kind !== kind) this.#fail(token, `a ${kind}`);
    return token;
  }

  #expectText(text: string): void {
    const token = this.#next(`"${text}"`);
    if (token.text !== text) this.#fail(token, `"${text}"`);
  }

  #fail(token: Token, expected: string): never {
    throw new SyntaxError(
      `Expected ${expected} at ${token.at}, found "${token.text}" in ${this.#expr}`,
    );
  }
}

/** Returns the metric names that `expr` queries; throws if it does not parse. */
function metricNames(expr: string): Set<string> {
  const parser = new PromQlParser(expr);
  parser.parse();
  return parser.metrics;
}

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Target[];
  panels?: Panel[];
  datasource?: { type?: string; uid?: string };
}

interface Dashboard {
  schemaVersion: number;
  panels: Panel[];
  templating: {
    list: { name: string; type: string; query: unknown }[];
  };
}

async function readDashboard(): Promise<Dashboard> {
  return JSON.parse(await Deno.readTextFile(DASHBOARD_PATH)) as Dashboard;
}

/** Returns every panel, those inside collapsed rows included. */
function allPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

function dashboardExprs(dashboard: Dashboard): string[] {
  return allPanels(dashboard).flatMap((panel) =>
    (panel.targets ?? []).map((target) => target.expr ?? "")
  );
}

/** Returns metric name to type from the `# TYPE` lines of /metrics. */
function exportedMetrics(text: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const line of text.split("\n")) {
    const match = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (match !== null) types.set(match[1]!, match[2]!);
  }
  return types;
}

/** Returns the exported metric that serves `name`, or undefined. */
function exportedAs(
  name: string,
  exported: Map<string, string>,
): string | undefined {
  if (exported.has(name)) return name;
  for (const suffix of HISTOGRAM_SUFFIXES) {
    if (!name.endsWith(suffix)) continue;
    const base = name.slice(0, -suffix.length);
    if (exported.get(base) === "histogram") return base;
  }
  return undefined;
}

/** Starts a relay that registers every metric and returns its /metrics. */
async function scrapeMetrics(): Promise<Map<string, string>> {
  await using test = await startTestRelay({
    noWebTransport: false,
    webhookUrl: "http://127.0.0.1:9/hook",
    federation: {
      peers: [],
      trusted: [{
        fingerprint: "a5d6:e3c6:5ae7:185c:4eb1:af89:daed:4a43",
        label: "relay-b",
      }],
      globalRooms: ["*"],
    },
  });
  const response = await fetch(`${test.relay.httpUrl}/metrics`);
  assert.equal(response.status, 200);
  return exportedMetrics(await response.text());
}

Deno.test("PromQL parser finds metric names", () => {
  assert.deepEqual(
    [
      ...metricNames(
        'histogram_quantile(0.95, sum by (le) (rate(a_bucket{x=~"$i"}' +
          "[$__rate_interval]))) / on (job) group_left b + sum(c) by (d)",
      ),
    ],
    ["a_bucket", "b", "c"],
  );
  assert.throws(() => metricNames("sum(rate(a[5m])"), SyntaxError);
  assert.throws(() => metricNames('a{x="1"'), SyntaxError);
  assert.throws(() => metricNames("unknown_function(a)"), SyntaxError);
  assert.throws(() => metricNames("a b"), SyntaxError);
});

Deno.test("dashboard is a Grafana 10 model", async () => {
  const dashboard = await readDashboard();
  assert.ok(dashboard.schemaVersion >= 36, "schemaVersion of Grafana 10");

  const variable = dashboard.templating.list.find((entry) =>
    entry.type === "datasource"
  );
  assert.equal(variable?.query, "prometheus");

  const panels = allPanels(dashboard);
  const ids = panels.map((panel) => panel.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  for (const panel of panels) {
    if (panel.type === "row") continue;
    const targets = panel.targets ?? [];
    assert.ok(targets.length > 0, `panel "${panel.title}" has no query`);
    assert.equal(panel.datasource?.uid, "${datasource}", panel.title);
    for (const target of targets) {
      assert.equal(target.datasource?.uid, "${datasource}", panel.title);
      assert.ok((target.expr ?? "") !== "", `empty query in ${panel.title}`);
    }
    const refIds = targets.map((target) => target.refId);
    assert.equal(new Set(refIds).size, refIds.length, panel.title);
  }
});

Deno.test("dashboard queries exported metrics", async () => {
  const dashboard = await readDashboard();
  const queried = new Set<string>();
  for (const expr of dashboardExprs(dashboard)) {
    for (const name of metricNames(expr)) queried.add(name);
  }
  assert.ok(queried.size > 0, "the dashboard queries no metric");

  const exported = await scrapeMetrics();
  for (const name of queried) {
    assert.ok(
      exportedAs(name, exported) !== undefined,
      `the dashboard queries ${name}, which /metrics does not export`,
    );
  }
});

Deno.test("dashboard shows every metric", async () => {
  const dashboard = await readDashboard();
  const exported = await scrapeMetrics();
  const shown = new Set<string>();
  for (const expr of dashboardExprs(dashboard)) {
    for (const name of metricNames(expr)) {
      const base = exportedAs(name, exported);
      if (base !== undefined) shown.add(base);
    }
  }
  for (const name of exported.keys()) {
    assert.ok(shown.has(name), `no dashboard panel shows ${name}`);
  }
});
