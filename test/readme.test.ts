import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

// The README is part of the product: its Layout section describes the tree as it is.
const README = fs.readFileSync('README.md', 'utf8');

/** The text of a `## ` section, up to the next `## ` heading (its `### ` subsections included). */
function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README.md has no "## ${heading}" section`);
  const next = markdown.indexOf('\n## ', start + 1);
  return markdown.slice(start, next < 0 ? undefined : next);
}

/** `dir`'s entries as the Layout names them: `dir/name/` for a folder, `dir/name` for a file. */
function entries(dir: string, only: 'all' | 'folders' = 'all'): string[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => only === 'all' || e.isDirectory())
    .map((e) => `${dir}/${e.name}${e.isDirectory() ? '/' : ''}`)
    .sort();
}

/** Repository paths written in backticks (`src/app/contexts.ts`), placeholders like `<name>` left out. */
function pathsNamed(text: string): string[] {
  const roots = /^(src|tools|bench|test|docs|scripts|bin)\//;
  return [...text.matchAll(/`([^`\s]+)`/g)]
    .map((m) => m[1]!)
    .filter((p) => roots.test(p) && !p.includes('<') && !p.includes('*'));
}

describe('README.md: Layout', () => {
  const layout = section(README, 'Layout');

  it('describes every entry at the top of src/, in src/platform/ and src/contexts/, and every tool', () => {
    const expected = [
      ...entries('src'),
      ...entries('src/platform'),
      ...entries('src/contexts'),
      ...entries('tools', 'folders'),
    ];
    const missing = expected.filter((entry) => !layout.includes(`\`${entry}\``));
    expect(missing, 'entries the Layout section of README.md does not describe').toEqual([]);
  });

  it('names only paths that exist', () => {
    const gone = pathsNamed(layout).filter((p) => !fs.existsSync(path.resolve(p)));
    expect(gone, 'paths in the Layout section of README.md that do not exist').toEqual([]);
  });
});
