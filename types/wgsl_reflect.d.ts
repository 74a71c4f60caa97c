// The package's bare entry fails under Node/vitest; we import its ESM build by path.
declare module 'wgsl_reflect/wgsl_reflect.module.js' {
  export * from 'wgsl_reflect';
}
