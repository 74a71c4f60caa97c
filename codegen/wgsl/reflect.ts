/**
 * Reads a generated shader back with wgsl_reflect: its storage bindings and
 * workgroup size are the one source of truth for bind group layouts.
 */
import { WgslReflect } from 'wgsl_reflect/wgsl_reflect.module.js';

export interface ReflectedBinding {
  readonly name: string;
  readonly group: number;
  readonly binding: number;
  readonly access: 'read' | 'read_write';
}

export interface ReflectedShader {
  readonly bindings: readonly ReflectedBinding[];
  readonly workgroupSize: readonly [number, number, number];
}

export function reflectShader(code: string, entryPoint: string): ReflectedShader {
  const reflect = new WgslReflect(code);
  const entry = reflect.entry.compute.find((f) => f.name === entryPoint);
  if (!entry) throw new Error(`generated WGSL has no compute entry point '${entryPoint}'`);
  if (!entry.workgroupSize) throw new Error(`entry point '${entryPoint}' has no resolvable @workgroup_size`);
  if (reflect.uniforms.length > 0 || reflect.textures.length > 0 || reflect.samplers.length > 0) {
    throw new Error('generated WGSL declares uniforms, textures or samplers; kernels bake constants and use storage buffers only');
  }
  const bindings = reflect.storage
    .map((v) => {
      if (v.access !== 'read' && v.access !== 'read_write') {
        throw new Error(`binding '${v.name}' has unsupported access '${v.access}'`);
      }
      return { name: v.name, group: v.group, binding: v.binding, access: v.access as 'read' | 'read_write' };
    })
    .sort((a, b) => a.group - b.group || a.binding - b.binding);
  const [x, y, z] = entry.workgroupSize;
  return { bindings, workgroupSize: [x, y, z] };
}
