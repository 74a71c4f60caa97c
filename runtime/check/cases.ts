/**
 * Loading reference case files from disk (Node); the format itself is checked
 * in caseFormat.ts. Used by `convbn check`.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { caseError, parseCase, type ConvBNCase } from './caseFormat.js';

export * from './caseFormat.js';

export async function loadCase(file: string): Promise<ConvBNCase> {
  const text = await readFile(file, 'utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw caseError(file, 'json', (error as Error).message, 'the file must be valid JSON');
  }
  return parseCase(json, file);
}

/** Every `*.json` in `dir` (not recursive), sorted by file name. */
export async function loadCaseDir(dir: string): Promise<ConvBNCase[]> {
  const names = (await readdir(dir)).filter((name) => name.endsWith('.json')).sort();
  if (names.length === 0) throw caseError(dir, 'directory', dir, 'must contain at least one *.json case file');
  const cases: ConvBNCase[] = [];
  for (const name of names) cases.push(await loadCase(path.join(dir, name)));
  return cases;
}
