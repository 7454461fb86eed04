/**
 * Path rules of ZooKeeper's PathUtils.validatePath: absolute, '/'-separated, no empty, '.' or '..'
 * segments, no trailing '/' (except the root), no control or reserved characters. A sequential create
 * is validated with its suffix appended, so `/queue/` is a valid prefix for `/queue/0000000001`.
 */
import { utf8ByteLength } from '@dsys/kit';
import { PATH_BYTES_MAX } from './types.js';

/** Null when `path` is valid, else the reason. */
export function pathProblem(path: string): string | null {
  if (path.length === 0) return 'path is empty';
  if (path[0] !== '/') return 'path must start with /';
  if (utf8ByteLength(path) > PATH_BYTES_MAX) return `path longer than ${PATH_BYTES_MAX} bytes`;
  if (path.length === 1) return null;
  if (path.endsWith('/')) return 'path must not end with /';
  const segments = path.slice(1).split('/');
  for (const segment of segments) {
    if (segment.length === 0) return 'empty segment';
    if (segment === '.' || segment === '..') return `relative segment "${segment}"`;
  }
  for (let i = 0; i < path.length; i++) {
    const code = path.charCodeAt(i);
    if (
      code === 0 ||
      (code > 0x00 && code < 0x20) ||
      (code > 0x7e && code < 0xa0) ||
      (code > 0xd7ff && code < 0xf900) ||
      (code > 0xffef && code <= 0xffff)
    ) {
      return `invalid character \\u${code.toString(16).padStart(4, '0')} at ${i}`;
    }
  }
  return null;
}

export function parentOf(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash <= 0 ? '/' : path.slice(0, slash);
}

export function baseName(path: string): string {
  return path.slice(path.lastIndexOf('/') + 1);
}

export function childPath(parent: string, name: string): string {
  return parent === '/' ? `/${name}` : `${parent}/${name}`;
}

/** ZooKeeper's sequential suffix: the parent's cversion, `%010d`. */
export function sequenceSuffix(cversion: number): string {
  if (cversion < 0) return `-${String(-cversion).padStart(9, '0')}`;
  return String(cversion).padStart(10, '0');
}

/** True when `path` is `ancestor` or below it. */
export function isWithin(path: string, ancestor: string): boolean {
  if (ancestor === '/') return true;
  return path === ancestor || path.startsWith(`${ancestor}/`);
}
