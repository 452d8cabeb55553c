/*
 * adudiffapi.h - C API of libadudiffapi.so (Azure Device Update delta processor, legacy apply API).
 *
 * GENERATED FILE - DO NOT EDIT. Produced by build.rs with cbindgen from src/ffi.rs and
 * cbindgen.toml; regenerate it with scripts/update-header.sh and commit the result.
 *
 * Drop-in compatible with Microsoft's legacy_adudiffapply.h (iot-hub-device-update-delta 3.0.0).
 * Link with -ladudiffapi, or dlopen("libadudiffapi.so") as the Device Update agent does.
 */

#ifndef ADUDIFFAPI_H
#define ADUDIFFAPI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Opaque handle of a legacy apply session (`void *` in C).
 */
typedef void *adu_apply_handle;

/**
 * Creates a session. Returns NULL only when memory is exhausted or, on a 32-bit target, after
 * 2^32 - 1 sessions (handles are never reused).
 *
 * Not `unsafe` in Rust: it takes no arguments.
 */
adu_apply_handle adu_diff_apply_create_session(void);

/**
 * Frees a session. NULL, unknown and already closed handles are ignored.
 *
 * Not `unsafe` in Rust: any handle value is accepted, as it is only looked up in the registry of
 * live sessions, never dereferenced.
 */
void adu_diff_apply_close_session(adu_apply_handle handle);

/**
 * Sets a file to which each apply appends a one-line summary. Upstream ignores this call; we
 * honour it when the path is non-NULL. Returns 0 (also for an unknown handle, like upstream).
 *
 * # Safety
 * `log_path` is NULL or points to a NUL-terminated string that stays valid and unchanged until
 * the call returns. `handle` may be any value.
 */
int adu_diff_apply_set_log_path(adu_apply_handle handle, const char *log_path);

/**
 * Applies `diff_path` to `source_path`, writing `target_path`. Returns 0 on success, otherwise
 * the number of errors recorded in the session (1).
 *
 * # Safety
 * Each path is NULL (reported as error code 1) or points to a NUL-terminated string that stays
 * valid and unchanged until the call returns. `handle` may be any value: NULL, closed and
 * foreign handles return 1 and record nothing.
 */
int adu_diff_apply(adu_apply_handle handle,
                   const char *source_path,
                   const char *diff_path,
                   const char *target_path);

/**
 * Number of errors recorded by the last call on this session (0 for an unknown handle).
 *
 * Declared `uint32_t` like upstream; the agent declares it as returning `size_t`, which is safe
 * because the value is always far below 2^32 and 32-bit results are zero-extended on x86-64 and
 * AArch64.
 *
 * Not `unsafe` in Rust: any handle value is accepted (only looked up, never dereferenced).
 */
uint32_t adu_diff_apply_get_error_count(adu_apply_handle handle);

/**
 * Code of error `index`, or 0 when out of range or for an unknown handle.
 *
 * Not `unsafe` in Rust: any handle and index are accepted (only looked up and compared).
 */
uint32_t adu_diff_apply_get_error_code(adu_apply_handle handle, uint32_t index);

/**
 * Text of error `index`, or NULL when out of range or for an unknown handle. The pointer stays
 * valid until the next call on the same session or its close.
 *
 * Not `unsafe` in Rust: any handle and index are accepted (only looked up and compared); reading
 * the returned text is up to the caller, within the validity stated above.
 */
const char *adu_diff_apply_get_error_text(adu_apply_handle handle, uint32_t index);

/**
 * Finds the zlib level that reproduces `compressed_file_path` (a gzip file) from
 * `uncompressed_file_path` with the `zlib_compression` recipe's settings (memLevel 9, OS byte 3),
 * trying upstream's order 9, 1, -1, 5, 2, 3, 4, 6, 7, 8. Returns 0 and stores the level, or an
 * error code directly (no session): 40005 when no level matches, 20300 when a file cannot be
 * opened, 1 for NULL arguments or an internal error.
 *
 * # Safety
 * Non-NULL paths must be NUL-terminated strings that stay valid and unchanged until the call
 * returns; a non-NULL `compression_level` must point to a writable `int32_t`.
 */
uint32_t diff_get_zlib_compression_level(const char *uncompressed_file_path,
                                         const char *compressed_file_path,
                                         int32_t *compression_level);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* ADUDIFFAPI_H */
