/**
 * Imports a Node built-in (or the Node-only `webgpu` package) at run time.
 * The specifier is a variable, so bundlers building for browsers leave these
 * paths out instead of failing on `node:*`; they are only reached under Node.
 */
export function importNode<T>(specifier: string): Promise<T> {
  return import(/* @vite-ignore */ specifier) as Promise<T>;
}
