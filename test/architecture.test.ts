/**
 * The import graph of the production code (lib/ and functions/) runs one way:
 * functions/ → lib/channels/ → lib/core/ → lib/store/, lib/queue/, lib/llm/ → lib/config
 * (see README.md, "Architecture"). This parses every import of those files and fails on an
 * edge pointing up the layer order, on an import of local/, test/ or bench/, and on a cycle;
 * and on a production file over 400 lines. The bench and the local stack depend on lib/,
 * functions/ and local/, never on test/: it fails on an import of test/ from bench/, local/ or
 * scripts/ (the operator's commands).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..');

/** Layers, lowest first; a file may import its own layer or a lower one. */
const LAYERS: readonly { layer: number; prefix: string }[] = [
  { layer: 0, prefix: 'lib/types.ts' },
  { layer: 0, prefix: 'lib/json.ts' },
  { layer: 0, prefix: 'lib/secrets' },
  { layer: 1, prefix: 'lib/config' },
  { layer: 2, prefix: 'lib/store/' },
  { layer: 2, prefix: 'lib/queue/' },
  { layer: 2, prefix: 'lib/llm/' },
  { layer: 2, prefix: 'lib/audio/' },
  { layer: 3, prefix: 'lib/core/' },
  { layer: 4, prefix: 'lib/channels/' },
  { layer: 5, prefix: 'functions/' },
];

function layerOf(file: string): number {
  const found = LAYERS.find((l) => file.startsWith(l.prefix));
  if (found === undefined) throw new Error(`${file} is in no layer: add it to LAYERS`);
  return found.layer;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

/** The repository files `file` imports (relative specifiers only; packages are not layers). */
export function importsOf(file: string, text: string): string[] {
  const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*'([^']+)'|import\(\s*'([^']+)'\s*\)|require\(\s*'([^']+)'\s*\)/g)].map(
    (m) => m[1] ?? m[2] ?? m[3] ?? '',
  );
  return specifiers
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => {
      const base = resolve(ROOT, dirname(file), spec);
      const target = [`${base}.ts`, join(base, 'index.ts'), base].find((candidate) => existsSync(candidate)) ?? base;
      return relative(ROOT, target);
    });
}

/** One cycle in `graph`, as a path, or undefined. */
export function findCycle(graph: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === 'done') return undefined;
    if (state.get(node) === 'open') return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(node, 'done');
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

const files = [...sourceFiles('lib'), ...sourceFiles('functions')];
const graph = new Map(files.map((file) => [file, importsOf(file, readFileSync(join(ROOT, file), 'utf8'))]));

describe('the import graph of lib/ and functions/', () => {
  it('has no edge pointing up the layer order', () => {
    const upward = [...graph].flatMap(([from, targets]) =>
      targets.filter((to) => graph.has(to) && layerOf(to) > layerOf(from)).map((to) => `${from} → ${to}`),
    );
    expect(upward).toEqual([]);
  });

  it('never reaches the local stack, the tests or the bench', () => {
    const outside = [...graph].flatMap(([from, targets]) => targets.filter((to) => !graph.has(to) && !to.startsWith('lib/infra/')).map((to) => `${from} → ${to}`));
    expect(outside).toEqual([]);
  });

  it('has no cycle', () => {
    expect(findCycle(graph)).toBeUndefined();
  });

  it('has no file over 400 lines (split along responsibilities, not in halves)', () => {
    const long = files.filter((file) => readFileSync(join(ROOT, file), 'utf8').split('\n').length > 401);
    expect(long).toEqual([]);
  });
});

describe('the imports of bench/, local/ and scripts/', () => {
  it('never reach the tests', () => {
    const tools = [...sourceFiles('bench'), ...sourceFiles('local'), ...sourceFiles('scripts')];
    const intoTests = tools.flatMap((from) =>
      importsOf(from, readFileSync(join(ROOT, from), 'utf8'))
        .filter((to) => to.startsWith('test/'))
        .map((to) => `${from} → ${to}`),
    );
    expect(intoTests).toEqual([]);
  });
});

describe('the checks themselves', () => {
  it('find the imports of a file, static, re-exported and dynamic', () => {
    const text = "import { a } from '../store/messages';\nexport { b } from './channel';\nimport type { C } from 'aws-lambda';\nconst w = await import('../../functions/worker');";
    expect(importsOf('lib/core/x.ts', text)).toEqual(['lib/store/messages.ts', 'lib/core/channel.ts', 'functions/worker.ts']);
  });

  it('resolve an import of test/ from bench/ to the test file', () => {
    expect(importsOf('bench/x.ts', "import { until } from '../test/support/until';")).toEqual(['test/support/until.ts']);
  });

  it('find a cycle, and none in a tree', () => {
    expect(findCycle(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]]))).toEqual(['a', 'b', 'c', 'a']);
    expect(findCycle(new Map([['a', ['b', 'c']], ['b', ['c']], ['c', []]]))).toBeUndefined();
  });
});
