import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..');
const out = mkdtempSync(path.join(tmpdir(), 'swap-proto-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

function files(dir: string, prefix = ''): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    return statSync(full).isDirectory()
      ? files(full, path.join(prefix, name))
      : [path.join(prefix, name)];
  });
}

it('src/generated (code and descriptor set) is exactly what `npm run proto` generates from proto/', () => {
  const bin = path.join(root, 'node_modules/.bin');
  execFileSync(path.join(bin, 'buf'), ['lint', 'proto'], { cwd: root, stdio: 'pipe' });
  const template = readFileSync(path.join(root, 'proto/buf.gen.yaml'), 'utf8').replace(
    'out: src/generated',
    `out: ${out}`,
  );
  const templatePath = path.join(out, 'buf.gen.yaml');
  writeFileSync(templatePath, template);
  execFileSync(path.join(bin, 'buf'), ['generate', 'proto', '--template', templatePath], {
    cwd: root,
    stdio: 'pipe',
  });
  rmSync(templatePath);
  execFileSync(
    path.join(bin, 'prettier'),
    ['--config', path.join(root, '.prettierrc.json'), '--log-level', 'warn', '--write', out],
    { cwd: root, stdio: 'pipe' },
  );
  execFileSync(
    path.join(bin, 'buf'),
    ['build', 'proto', '--as-file-descriptor-set', '-o', path.join(out, 'descriptor-set.binpb')],
    { cwd: root, stdio: 'pipe' },
  );

  const committed = path.join(root, 'src/generated');
  expect(files(out).sort()).toEqual(files(committed).sort());
  for (const file of files(committed)) {
    // The descriptor set is binary: compared as bytes, the code as text (for a readable diff).
    const encoding = file.endsWith('.binpb') ? 'base64' : 'utf8';
    expect(readFileSync(path.join(out, file), encoding), `${file} drifted; run npm run proto`).toBe(
      readFileSync(path.join(committed, file), encoding),
    );
  }
});
