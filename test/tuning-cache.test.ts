/**
 * The tuning caches kept in tuning/ (measured on other machines, e.g. the H100)
 * must stay usable as kernels change: every entry parses, names a choice that
 * fits its layer, and is what the selector picks for that adapter.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { configKey, type ConvBNConfig } from '../codegen/config.js';
import { TuningCache } from '../codegen/tuning/cache.js';
import { choiceProblem, PASSES } from '../codegen/tuning/choice.js';
import { profileFromKey } from '../codegen/tuning/profile.js';
import { selectKernels } from '../codegen/tuning/select.js';

const DIR = path.join(import.meta.dirname, '..', 'tuning');

/** A config from its configKey ("N=8,Cin=64,...,layout=NCHW"). */
function configFromKey(key: string): ConvBNConfig {
  const fields = Object.fromEntries(key.split(',').map((kv) => {
    const [name, value] = kv.split('=');
    return [name, value === 'true' ? true : value === 'false' ? false : name === 'layout' || name === 'paddingMode' ? value : Number(value)];
  }));
  // The key names the padding mode only when it is not zeros.
  return { paddingMode: 'zeros', ...fields } as unknown as ConvBNConfig;
}

const files = readdirSync(DIR).filter((f) => f.endsWith('.json'));

describe('tuning caches in tuning/', () => {
  test('there is at least one', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const file of files) {
    test(`${file}: every entry fits its layer and is what the selector picks on that adapter`, () => {
      const cache = TuningCache.parse(readFileSync(path.join(DIR, file), 'utf8'));
      const adapters = Object.entries(cache.data.adapters);
      expect(adapters.length).toBeGreaterThan(0);
      let entries = 0;
      for (const [adapter, byConfig] of adapters) {
        const profile = profileFromKey(adapter);
        for (const [key, entry] of Object.entries(byConfig)) {
          const c = configFromKey(key);
          expect(configKey(c)).toBe(key);
          const picked = selectKernels(c, { profile, cache });
          for (const pass of PASSES) {
            const choice = entry[pass];
            expect(choice, `${file} ${key} ${pass}`).toBeDefined();
            expect(choiceProblem(pass, choice!, c), `${file} ${key} ${pass}`).toBeUndefined();
            expect(picked[pass]).toEqual(choice);
            entries++;
          }
        }
      }
      expect(entries).toBeGreaterThan(0);
    });
  }
});
