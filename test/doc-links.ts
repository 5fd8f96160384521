import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * Docs that a comment or a markdown file names must be in the repository (issue 20, item 4): design notes
 * live in docs/, and a citation of a note kept elsewhere is a dead end for every other reader. Checked:
 * every `*.md` name and every `docs/…` path in the comments of code files and in the whole text of other
 * text files (markdown, shell, Dockerfile, HTML, CSS), with the `§N` sections and quoted "Heading"s cited
 * right after a markdown file's name. URLs are left alone (another repository's files are cited by URL).
 */

export interface BrokenLink {
  file: string;
  line: number;
  /** The name as written. */
  name: string;
  why: string;
}

/** What a repository holds: every file's repository-relative path, and the text of the files to scan. */
export interface Tree {
  paths: ReadonlySet<string>;
  texts: ReadonlyMap<string, string>;
}

const CODE = /\.(ts|tsx|mts|cts|js|mjs|cjs)$/;
/** Data and binaries: no comments to read. */
const NOT_SCANNED = /\.(json|png|jpe?g|gif|webp|avif|safetensors|bin|raw|onnx|pb|lock|tgz|gz|zip)$/;
/** Folders left out of the walk: installed packages, caches, builds and other generated output (.gitignore's). */
const SKIPPED_DIRS = new Set(['node_modules', '.cache', 'dist', '.git', 'coverage', 'cdk.out', '.scratch', 'tmp', 'artifacts']);

/** The repository at `root`: every file outside the skipped folders, and the text of those to scan. */
export function readTree(root: string): Tree {
  const paths = new Set<string>();
  const texts = new Map<string, string>();
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) {
        if (!SKIPPED_DIRS.has(entry.name)) walk(rel);
      } else if (entry.isFile()) {
        paths.add(rel);
        if (!NOT_SCANNED.test(entry.name)) texts.set(rel, fs.readFileSync(path.join(root, rel), 'utf8'));
      }
    }
  };
  walk('');
  return { paths, texts };
}

/** A stretch of a file to scan: its text and the line it starts on. */
interface Passage {
  text: string;
  line: number;
}

/**
 * The comments of a code file, found by TypeScript's parser (so `//` inside a string or a regular expression
 * is not one), with their `//`, `/*`, `*` and `*\/` markers blanked, so that a citation wrapped over two lines
 * of a block comment reads as prose.
 */
export function commentsOf(file: string, source: string): Passage[] {
  const kind = /\.(tsx|jsx)$/.test(file) ? ts.ScriptKind.TSX : /\.(js|mjs|cjs)$/.test(file) ? ts.ScriptKind.JS : ts.ScriptKind.TS;
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, false, kind);
  const starts = new Set<number>();
  const passages: Passage[] = [];
  const add = (pos: number, end: number) => {
    if (starts.has(pos)) return;
    starts.add(pos);
    const text = source.slice(pos, end).replace(/^(\s*)(\/\*+|\/\/+|\*+(?!\/))?/gm, (_, space: string, marker = '') => space + ' '.repeat(marker.length)).replace(/\*+\/$/, (m) => ' '.repeat(m.length));
    passages.push({ text, line: sf.getLineAndCharacterOfPosition(pos).line + 1 });
  };
  const visit = (node: ts.Node) => {
    ts.forEachLeadingCommentRange(source, node.getFullStart(), add);
    ts.forEachTrailingCommentRange(source, node.getEnd(), add);
    for (const child of node.getChildren(sf)) visit(child);
  };
  visit(sf);
  ts.forEachLeadingCommentRange(source, sf.endOfFileToken.getFullStart(), add);
  return passages.sort((a, b) => a.line - b.line);
}

/** `*.md` names (with any folders before them) and `docs/…` paths; a path inside a longer one or a URL is not matched. */
const NAME = /(?<![\w/.@-])((?:[\w.-]+\/)*[\w.-]+\.md|docs\/[\w./-]*[\w-])(?![\w/-])/g;
const URL = /\b[a-z][a-z0-9+.-]*:\/\/[^\s)>\]"'`]+/gi;
/** Right after a markdown name: `§2.4`, `§6.1, §6.4`, or a quoted "Heading" (after a comma or in parentheses). */
const SECTIONS = /^[`'")\]]*\s*((?:§\d+(?:\.\d+)*(?:\s*,\s*|\s+and\s+|\s*)?)+)/;
const QUOTED_HEADING = /^[`'\])]*\s*[,(]?\s*"([^"\n]+)"/;

/**
 * A markdown file's headings: their numbers (`## 2.4 RoPE` → 2.4) and their texts, which a quoted citation
 * may name; a list item's opening words (`- **Weights** (…)`) count as a heading's text too.
 */
function headingsOf(markdown: string): { numbers: Set<string>; texts: string[] } {
  const numbers = new Set<string>();
  const texts: string[] = [];
  for (const m of markdown.matchAll(/^#{1,6}\s+(.+?)\s*$/gm)) {
    texts.push(m[1]);
    const number = /^§?(\d+(?:\.\d+)*)\.?(\s|$)/.exec(m[1]);
    if (number) numbers.add(number[1]);
  }
  for (const m of markdown.matchAll(/^\s*[-*]\s+(?:\*\*)?(.+?)\s*$/gm)) texts.push(m[1]);
  return { numbers, texts };
}

/** Where a name written in `file` points: beside the file, or from the repository's root; a bare file name may be any file so named. */
function resolve(tree: Tree, file: string, name: string): string | undefined {
  const clean = name.replace(/^\.\//, '');
  if (!clean.includes('/')) {
    const beside = path.posix.join(path.posix.dirname(file), clean);
    if (tree.paths.has(beside)) return beside;
    if (tree.paths.has(clean)) return clean;
    return [...tree.paths].find((p) => p.endsWith(`/${clean}`));
  }
  for (const candidate of [path.posix.normalize(path.posix.join(path.posix.dirname(file), clean)), path.posix.normalize(clean)]) {
    if (tree.paths.has(candidate)) return candidate;
  }
  return undefined;
}

/** The passages of a file that are read for names: a code file's comments, any other text file whole. */
function passagesOf(file: string, text: string): Passage[] {
  if (!/\.md\b|docs\//.test(text)) return []; // nothing to find: spares parsing most code files
  return CODE.test(file) ? commentsOf(file, text) : [{ text, line: 1 }];
}

/** Every name in `tree`'s scanned files that does not resolve, or whose cited section or heading its doc lacks. */
export function brokenLinks(tree: Tree): BrokenLink[] {
  const broken: BrokenLink[] = [];
  for (const [file, source] of tree.texts) {
    for (const passage of passagesOf(file, source)) {
      const text = passage.text.replace(URL, (url) => ' '.repeat(url.length));
      for (const m of text.matchAll(NAME)) {
        const name = m[1];
        const line = passage.line + (text.slice(0, m.index).match(/\n/g)?.length ?? 0);
        const target = resolve(tree, file, name);
        if (!target) {
          broken.push({ file, line, name, why: 'no such file in the repository' });
          continue;
        }
        if (!target.endsWith('.md')) continue;
        const after = text.slice(m.index! + name.length);
        const doc = headingsOf(tree.texts.get(target) ?? '');
        for (const section of SECTIONS.exec(after)?.[1].match(/§\d+(?:\.\d+)*/g) ?? []) {
          if (!doc.numbers.has(section.slice(1))) broken.push({ file, line, name: `${name} ${section}`, why: `${target} has no heading numbered ${section.slice(1)}` });
        }
        const heading = QUOTED_HEADING.exec(after)?.[1].replace(/\s+/g, ' ');
        if (heading && !doc.texts.some((t) => t.startsWith(heading))) broken.push({ file, line, name: `${name} "${heading}"`, why: `${target} has no heading "${heading}"` });
      }
    }
  }
  return broken;
}

/** The relative targets of a markdown file's links, `[text](target)`, without their #anchors. */
export function markdownLinks(markdown: string): string[] {
  return [...markdown.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]).filter((t) => !/^[a-z][a-z0-9+.-]*:|^#/i.test(t)).map((t) => t.replace(/#.*$/, ''));
}
