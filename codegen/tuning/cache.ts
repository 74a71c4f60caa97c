/**
 * The tuning cache: per adapter (AdapterProfile.key) and config (configKey),
 * the kernel choice `convbn tune` measured fastest, with its timings. Plain
 * JSON; `convbn tune` writes it, `convbn gen --tuning` and the runtime read it
 * (WebGPU engine option `kernels.cache`, or the file named by
 * CONVBN_TUNING_CACHE in Node).
 */
import { configKey, normalizeConfig, toInput, type ConvBNConfig } from '../config.js';
import { choiceProblem, PASSES, type KernelChoice, type Pass, type PassChoice } from './choice.js';

export const TUNING_CACHE_VERSION = 1;

export interface TunedEntry {
  readonly forward?: PassChoice;
  readonly dgrad?: PassChoice;
  readonly wgrad?: PassChoice;
  /** Median ms of each candidate tried, by description: what the choice was based on. */
  readonly timings?: Readonly<Record<string, Readonly<Record<string, number>>>>;
  readonly tunedAt?: string;
}

export interface TuningCacheFile {
  readonly version: number;
  /** adapter key -> config key -> entry */
  readonly adapters: Record<string, Record<string, TunedEntry>>;
}

export class TuningCache {
  constructor(readonly data: TuningCacheFile = { version: TUNING_CACHE_VERSION, adapters: {} }) {
    if (data.version !== TUNING_CACHE_VERSION || typeof data.adapters !== 'object' || data.adapters === null) {
      throw new Error(`not a convbn tuning cache (version ${String(data.version)}, expected ${TUNING_CACHE_VERSION})`);
    }
  }

  static parse(text: string): TuningCache {
    return new TuningCache(JSON.parse(text) as TuningCacheFile);
  }

  toJSON(): TuningCacheFile {
    return this.data;
  }

  /**
   * The cached choice of one pass: for this config, else for the same layer
   * at another batch size (a split batch runs the same layer with a smaller N).
   * Entries that do not fit the config are ignored.
   */
  lookup(adapter: string, c: ConvBNConfig, pass: Pass): PassChoice | undefined {
    const byConfig = this.data.adapters[adapter];
    if (!byConfig) return undefined;
    const exact = byConfig[configKey(c)]?.[pass];
    if (exact && !choiceProblem(pass, exact, c)) return exact;
    const withoutN = configKey(normalizeConfig({ ...toInput(c), N: 1 }));
    for (const [key, entry] of Object.entries(byConfig)) {
      const choice = entry[pass];
      if (!choice || choiceProblem(pass, choice, c)) continue;
      if (key.replace(/^N=\d+,/, 'N=1,') === withoutN) return choice;
    }
    return undefined;
  }

  store(adapter: string, c: ConvBNConfig, entry: TunedEntry): void {
    const byConfig = (this.data.adapters[adapter] ??= {});
    byConfig[configKey(c)] = { ...byConfig[configKey(c)], ...entry };
  }

  /** Every pass the cache has for this config, as a partial choice. */
  lookupAll(adapter: string, c: ConvBNConfig): Partial<KernelChoice> {
    const out: Partial<Record<Pass, PassChoice>> = {};
    for (const pass of PASSES) {
      const choice = this.lookup(adapter, c, pass);
      if (choice) out[pass] = choice;
    }
    return out as Partial<KernelChoice>;
  }
}

/** Node only: reads a cache file (undefined when it does not exist). */
export async function readTuningCache(file: string): Promise<TuningCache | undefined> {
  const { readFile } = await import('node:fs/promises');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    if ((e as { code?: string }).code === 'ENOENT') return undefined;
    throw e;
  }
  return TuningCache.parse(text);
}

export async function writeTuningCache(file: string, cache: TuningCache): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  await writeFile(file, JSON.stringify(cache.toJSON(), null, 2) + '\n');
}

/**
 * Node only, synchronous: the cache named by CONVBN_TUNING_CACHE, if set and
 * present. The runtime reads it when its pipeline cache is created.
 */
export function tuningCacheFromEnv(): TuningCache | undefined {
  const proc = (globalThis as { process?: { env?: Record<string, string | undefined>; getBuiltinModule?: (m: string) => unknown } }).process;
  const file = proc?.env?.CONVBN_TUNING_CACHE;
  if (!file || !proc?.getBuiltinModule) return undefined;
  const fs = proc.getBuiltinModule('node:fs') as typeof import('node:fs');
  if (!fs.existsSync(file)) return undefined;
  return TuningCache.parse(fs.readFileSync(file, 'utf8'));
}
