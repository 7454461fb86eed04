/** The key-value service's size limits, shared by its native and etcd-style requests. */

/** Largest key, in bytes (UTF-8 for the native API's string keys). */
export const KEY_BYTES_MAX = 4096;
/** Largest value, in bytes (the "values up to 1 MiB"). */
export const VALUE_BYTES_MAX = 1024 * 1024;
