/*
 * tensorstream — the stable C API.
 *
 * Streams the tensors of SafeTensors files (or raw byte ranges of any file) from storage
 * into memory, concurrently and within a host-memory budget.
 *
 * Conventions (hold for every function below):
 *   - Every function that can fail returns an int status: TENSORSTREAM_OK (0) or one of
 *     the negative codes of tensorstream_status. On failure, tensorstream_last_error()
 *     returns a message for the calling thread that names the file or URL, the tensor
 *     where there is one, and the cause. No C++ exception ever crosses this API.
 *   - Handles are opaque. Whatever a *_create function makes is freed by the matching
 *     *_destroy; passing NULL to a destroy/release function is a no-op.
 *   - Strings returned by accessors are owned by the handle they came from and stay
 *     valid as long as that handle.
 *   - A tensorstream_options object may be used from one thread at a time. A stream is
 *     driven by one consumer thread; the library runs its own reader threads inside it.
 *     Any thread may call tensorstream_stream_cancel, and tensorstream_stream_destroy
 *     while the consumer waits in next (see there).
 *
 * Typical use:
 *   tensorstream_options* o;  tensorstream_options_create(&o);
 *   tensorstream_stream* s;   tensorstream_stream_create(o, &s);
 *   size_t f;                 tensorstream_stream_add_file(s, "model.safetensors", &f);
 *   tensorstream_stream_start(s);
 *   tensorstream_tensor* t;
 *   while (tensorstream_stream_next(s, &t) == TENSORSTREAM_OK) {
 *     use(tensorstream_tensor_name(t), tensorstream_tensor_data(t), ...);
 *     tensorstream_tensor_release(t);
 *   }   // ends with TENSORSTREAM_END_OF_STREAM, or an error status
 *   tensorstream_stream_destroy(s);  tensorstream_options_destroy(o);
 */
#ifndef TENSORSTREAM_TENSORSTREAM_H_
#define TENSORSTREAM_TENSORSTREAM_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define TENSORSTREAM_API __attribute__((visibility("default")))
#else
#define TENSORSTREAM_API
#endif

/* Status codes. Values are part of the ABI and never change. */
typedef enum tensorstream_status {
  TENSORSTREAM_OK = 0,
  TENSORSTREAM_END_OF_STREAM = 1,        /* stream_next: every tensor was delivered */
  TENSORSTREAM_INVALID_ARGUMENT = -1,    /* bad parameter (NULL handle, zero concurrency…) */
  TENSORSTREAM_NOT_FOUND = -2,           /* file, object, or tensor name does not exist */
  TENSORSTREAM_PERMISSION_DENIED = -3,   /* access denied by the OS or the server */
  TENSORSTREAM_FORMAT_ERROR = -4,        /* the file is not a valid SafeTensors file */
  TENSORSTREAM_IO_ERROR = -5,            /* read failed, truncated, connection lost… */
  TENSORSTREAM_MEMORY_LIMIT = -6,        /* memory limit below what one tensor needs */
  TENSORSTREAM_OUT_OF_MEMORY = -7,       /* allocation failed */
  TENSORSTREAM_CANCELLED = -8,           /* the stream was cancelled */
  TENSORSTREAM_FAILED_PRECONDITION = -9, /* call out of order (e.g. add_file after start) */
  TENSORSTREAM_UNAVAILABLE = -10,        /* device or service unavailable (no CUDA, 5xx…) */
  TENSORSTREAM_INTERNAL = -11            /* a bug: please report it */
} tensorstream_status;

/* The version of this header; the build checks it equals the library's (CMake project). */
#define TENSORSTREAM_VERSION_MAJOR 0
#define TENSORSTREAM_VERSION_MINOR 1
#define TENSORSTREAM_VERSION_PATCH 0

/* "MAJOR.MINOR.PATCH" of the library actually loaded. */
TENSORSTREAM_API const char* tensorstream_version(void);

/* The message of the last failing call made by this thread ("" if none). Valid until the
 * thread's next failing call. */
TENSORSTREAM_API const char* tensorstream_last_error(void);

/* Writes `text` (`size` bytes) into `out` (at most `out_size` bytes, NUL-terminated) with
 * every control character and every byte that is not valid UTF-8 escaped ("\n", "\x1b",
 * "\xff"…): safe to print on a terminal whatever a file or a server put in a name. Returns
 * the length the whole escaped text needs, as snprintf does. */
TENSORSTREAM_API size_t tensorstream_printable(const char* text, size_t size, char* out,
                                               size_t out_size);

/* A constant name for a status code, e.g. "FORMAT_ERROR". */
TENSORSTREAM_API const char* tensorstream_status_name(int status);

/* ----------------------------------------------------------------------------------------
 * Options. tensorstream_options_create fills the defaults from the environment:
 *   RUNAI_STREAMER_CONCURRENCY     reader threads (default 16)
 *   RUNAI_STREAMER_CHUNK_BYTESIZE  bytes per read (default 2 MiB local)
 *   RUNAI_STREAMER_MEMORY_LIMIT    -1 unlimited (default), 0 = the largest tensor, N bytes
 *   TENSORSTREAM_DIRECT_IO         1 to read local files with O_DIRECT
 *   TENSORSTREAM_MMAP              0: without a memory limit, read local files into
 *                                  buffers rather than hand out views of a copy-on-write
 *                                  mapping of the file (the default, 1)
 *   TENSORSTREAM_GPU_STRATEGY      auto (default), staging or register: the gpu_strategy
 *                                  key of tensorstream_options_set
 * An unparsable environment value makes create fail with INVALID_ARGUMENT naming it.
 * -------------------------------------------------------------------------------------- */
typedef struct tensorstream_options tensorstream_options;

TENSORSTREAM_API int tensorstream_options_create(tensorstream_options** out);
/* Checks one of the variables above alone, as options_create reads it: OK, or
 * INVALID_ARGUMENT naming it (for callers that validate settings at a step of their own). */
TENSORSTREAM_API int tensorstream_check_environment(const char* name);
TENSORSTREAM_API void tensorstream_options_destroy(tensorstream_options* options);
/* 1..1024 */
TENSORSTREAM_API int tensorstream_options_set_concurrency(tensorstream_options* options,
                                                          int concurrency);
/* 4 KiB .. 1 GiB */
TENSORSTREAM_API int tensorstream_options_set_chunk_bytes(tensorstream_options* options,
                                                          uint64_t chunk_bytes);
/* -1 unlimited, 0 the largest tensor, N > 0 bytes. */
TENSORSTREAM_API int tensorstream_options_set_memory_limit(tensorstream_options* options,
                                                           int64_t memory_limit);
/* 0 buffered reads (page cache), 1 O_DIRECT for local files. */
TENSORSTREAM_API int tensorstream_options_set_direct_io(tensorstream_options* options, int enabled);
/* Where tensors are delivered: "cpu" (default) or "cuda" / "cuda:N". With a CUDA device,
 * chunks go through a small pinned staging area (counted against the memory limit; pinned
 * once per process and device and reused by later streams, up to
 * TENSORSTREAM_PINNED_CACHE_BYTES, default 1 GiB) and asynchronous copies into device
 * memory, or, for local files in the page cache, are copied straight from registered
 * windows of the file's mapping (see gpu_strategy); the CUDA runtime is loaded at run
 * time, and
 * stream_start fails with UNAVAILABLE, before any read, when no usable GPU exists. */
TENSORSTREAM_API int tensorstream_options_set_device(tensorstream_options* options,
                                                     const char* device);
/* Explicit object-store credentials; each argument may be NULL (then the environment,
 * profile files or instance metadata are used). They are never logged. Equivalent to the
 * s3.* keys of tensorstream_options_set. */
TENSORSTREAM_API int tensorstream_options_set_s3_credentials(
    tensorstream_options* options, const char* access_key_id, const char* secret_access_key,
    const char* session_token, const char* region, const char* endpoint_url);

/* Sets any option by name, from text. Keys:
 *   concurrency, chunk_bytes, memory_limit   integers, as the setters above
 *   direct_io                                1/0, true/false, yes/no, on/off
 *   host_memory   "mapped":  without a memory limit, tensors of local files are views of a
 *                            copy-on-write mapping of the file: no copy, but a file changed
 *                            or truncated on disk afterwards changes those tensors (or
 *                            faults on access), as with safetensors (TENSORSTREAM_MMAP=1,
 *                            the default);
 *                 "private": tensors are bytes the library owns, immune to later changes
 *                            of the file (TENSORSTREAM_MMAP=0).
 *   device_memory_limit  with a CUDA device, for tensors without a destination: the
 *                 device memory the stream allocates ahead of the consumer (allocated,
 *                 not yet delivered), each read group's when its bytes are about to
 *                 arrive; readers wait beyond it, so a model larger than the GPU streams
 *                 while the consumer releases tensors. -1 (default): max(1 GiB, the
 *                 largest tensor); N: bytes, at least the largest tensor's.
 *   gpu_strategy  with a CUDA device, how local files' bytes reach it:
 *                 "staging":  read into pinned slots, copied from there (cold files);
 *                 "register": each file is mapped read-only and windows of the mapping
 *                             (256 MiB, at most 4 at once, counted against the memory
 *                             limit) are registered with cudaHostRegister and copied
 *                             from directly: no copy through host memory, for files
 *                             already in the page cache. Registering the next window
 *                             overlaps the copies from the current one. A stream with
 *                             a file that cannot be mapped (object store, direct_io),
 *                             with overlapping ranges, or on a runtime that refuses
 *                             read-only registration stages instead (not an error);
 *                 "auto" (default, TENSORSTREAM_GPU_STRATEGY): "register" when every
 *                             file is local and at least 90 % of the pages of the
 *                             selected tensors are in the page cache, else "staging".
 *   s3.access_key_id, s3.secret_access_key, s3.session_token, s3.region, s3.endpoint
 *                 S3 settings, before the AWS_* variables and profile files
 *   gcs.credential_file  a service-account or authorized_user JSON file, before
 *                 RUNAI_STREAMER_GCS_CREDENTIAL_FILE and GOOGLE_APPLICATION_CREDENTIALS
 *   gcs.endpoint  e.g. http://127.0.0.1:4443 (an emulator), before
 *                 CLOUD_STORAGE_EMULATOR_ENDPOINT and STORAGE_EMULATOR_HOST
 *   gcs.anonymous 1: unauthenticated reads (RUNAI_STREAMER_GCS_USE_ANONYMOUS_CREDENTIALS)
 *   azure.connection_string, azure.account_name, azure.account_key, azure.sas_token
 *                 before AZURE_STORAGE_CONNECTION_STRING, _ACCOUNT_NAME, _ACCOUNT_KEY, _SAS_TOKEN
 *   azure.endpoint  e.g. http://127.0.0.1:10000/devstoreaccount1 (Azurite)
 *   azure.anonymous 1: unauthenticated reads (public containers)
 *                 Storage settings ("<scheme>.<name>"): NULL unsets one; never logged.
 * INVALID_ARGUMENT, naming the key, for an unknown key or a bad value (options unchanged). */
TENSORSTREAM_API int tensorstream_options_set(tensorstream_options* options, const char* key,
                                              const char* value);

/* ----------------------------------------------------------------------------------------
 * Streams. Create, add files (each add parses the file's header at once, so errors in a
 * header surface here), optionally select tensors, start, then take tensors with next.
 * -------------------------------------------------------------------------------------- */
typedef struct tensorstream_stream tensorstream_stream;
typedef struct tensorstream_tensor tensorstream_tensor;

/* The options are copied; the caller may destroy them right after. */
TENSORSTREAM_API int tensorstream_stream_create(const tensorstream_options* options,
                                                tensorstream_stream** out);

/* Cancels reading if still in progress, waits for the reader threads (well under a
 * second), frees every buffer not held by an unreleased tensor. Tensors taken from the
 * stream and not yet released remain valid and must still be released.
 * Threads: may be called while another thread is inside stream_next or stream_next_batch
 * on the same stream: that call returns CANCELLED, and destroy waits for it to return
 * before freeing the stream. No call on the stream may *start* once destroy has begun.
 * Processes: a stream belongs to the process that created it; in a child made by fork()
 * its calls fail with FAILED_PRECONDITION, and destroy leaks it (the parent's threads and
 * locks cannot be released from the child). */
TENSORSTREAM_API void tensorstream_stream_destroy(tensorstream_stream* stream);

/* Adds a SafeTensors file (local path, file://, or an object-store URI) and parses its
 * header. *file_index receives the index used by the accessors below and in tensors. */
TENSORSTREAM_API int tensorstream_stream_add_file(tensorstream_stream* stream, const char* uri,
                                                  size_t* file_index);

/* Adds raw byte ranges of any file: `count` consecutive ranges starting at `offset` with
 * the given sizes. They are delivered as U8 tensors of shape [size], named by their
 * position ("0", "1", …) within this call. */
TENSORSTREAM_API int tensorstream_stream_add_ranges(tensorstream_stream* stream, const char* uri,
                                                    uint64_t offset, const uint64_t* sizes,
                                                    size_t count, size_t* file_index);

/* Adds arbitrary byte ranges of any file: range i is [offsets[i], offsets[i] + sizes[i]),
 * delivered as a U8 tensor named "i". Ranges may overlap and come in any order; the
 * tensor index (tensor_info, tensor_index) follows the ranges sorted by offset, so use
 * the name to find a range's position. */
TENSORSTREAM_API int tensorstream_stream_add_range_list(tensorstream_stream* stream,
                                                        const char* uri, const uint64_t* offsets,
                                                        const uint64_t* sizes, size_t count,
                                                        size_t* file_index);

/* Restricts a SafeTensors file to the named tensors (only their bytes are read). Every
 * name must exist in the file (NOT_FOUND otherwise). Without it, every tensor is read. */
TENSORSTREAM_API int tensorstream_stream_select(tensorstream_stream* stream, size_t file_index,
                                                const char* const* names, size_t count);

/* Device streams only: deliver tensor `tensor_index` of a file into `device_ptr`, caller-owned
 * device memory of at least the tensor's byte size on the stream's device (e.g. a torch
 * tensor's data_ptr()). Tensors without a destination get device memory the stream
 * allocates and frees when the tensor is released. Call before start. */
TENSORSTREAM_API int tensorstream_stream_set_destination(tensorstream_stream* stream,
                                                         size_t file_index, size_t tensor_index,
                                                         void* device_ptr);

/* Header inspection, valid from add_file until destroy. */
TENSORSTREAM_API int tensorstream_stream_file_count(const tensorstream_stream* stream,
                                                    size_t* count);
TENSORSTREAM_API int tensorstream_stream_tensor_count(const tensorstream_stream* stream,
                                                      size_t file_index, size_t* count);
/* Describes tensor `tensor_index` of a file. Any out-pointer may be NULL. `offset` is the
 * absolute byte offset of the tensor in the file. The returned pointers live as long as
 * the stream. */
TENSORSTREAM_API int tensorstream_stream_tensor_info(const tensorstream_stream* stream,
                                                     size_t file_index, size_t tensor_index,
                                                     const char** name, const char** dtype,
                                                     size_t* ndim, const int64_t** shape,
                                                     uint64_t* offset, uint64_t* nbytes);
/* Every tensor of a file at once, as a JSON object of parallel arrays in tensor-index
 * order (sorted by offset): {"data_offset": N, "name": […], "dtype": […], "shape": [[…], …],
 * "offset": […], "nbytes": […]}, data_offset being where a SafeTensors file's data section
 * starts (8 + the header's length; 0 for raw ranges). Names are exact (JSON escapes, so a name
 * holding U+0000 survives, unlike the C strings of tensor_info). One call instead of one per
 * tensor, for bindings; the text is valid until the stream is destroyed. */
TENSORSTREAM_API int tensorstream_stream_tensors_json(tensorstream_stream* stream,
                                                      size_t file_index, const char** json);

/* The header's "__metadata__" object re-serialised as JSON ("{}" when absent). */
TENSORSTREAM_API int tensorstream_stream_metadata_json(const tensorstream_stream* stream,
                                                       size_t file_index, const char** json);

/* Starts the reader threads. Fails with MEMORY_LIMIT, before any read, when the memory
 * limit is below the largest tensor to be read. */
TENSORSTREAM_API int tensorstream_stream_start(tensorstream_stream* stream);

/* Blocks until some tensor is complete and hands it over (completion order, each tensor
 * exactly once). Returns END_OF_STREAM after the last one; any other non-OK status is the
 * first error of the stream, and every later call returns it again. */
TENSORSTREAM_API int tensorstream_stream_next(tensorstream_stream* stream,
                                              tensorstream_tensor** tensor);

/* One completed tensor as next_batch hands it over. The layout (eight 8-byte fields) is
 * part of the ABI and never changes. */
typedef struct tensorstream_delivery {
  tensorstream_tensor* tensor; /* the handle: release it (or the whole batch, below) */
  uint64_t file_index;
  uint64_t tensor_index; /* as in tensorstream_tensor_index */
  const void* data;      /* as tensorstream_tensor_data */
  uint64_t nbytes;
  const void* block;    /* host memory: the block `data` lies in (the read group's */
  uint64_t block_bytes; /* buffer, or the file's mapping), valid as long as the     */
                        /* tensor; NULL/0 for device tensors */
  int64_t device;       /* -1 host memory, else the CUDA device of `data` */
} tensorstream_delivery;

/* Flags of tensorstream_stream_next_batch. */
#define TENSORSTREAM_BATCH_KEEP 1 /* tensorstream_tensor_keep every tensor handed over */

/* Blocks until some tensor is complete, then hands over up to `capacity` completed tensors
 * without waiting for more (completion order, each exactly once): *count receives how
 * many. Returns OK with *count >= 1; END_OF_STREAM with *count = 0 after the last tensor;
 * or the stream's error as stream_next does. With timeout_ms >= 0 it waits at most that
 * long and may return OK with *count = 0 (nothing completed yet: call again), so that a
 * binding can react to signals; -1 waits as long as it takes. One call for many tensors. */
TENSORSTREAM_API int tensorstream_stream_next_batch(tensorstream_stream* stream,
                                                    tensorstream_delivery* out, size_t capacity,
                                                    int flags, int timeout_ms, size_t* count);

/* Releases the tensors of `count` deliveries (tensorstream_tensor_release of each). */
TENSORSTREAM_API void tensorstream_deliveries_release(const tensorstream_delivery* deliveries,
                                                      size_t count);

/* Cancels reading: next returns CANCELLED once the already completed tensors are taken.
 * Safe to call from any thread. */
TENSORSTREAM_API int tensorstream_stream_cancel(tensorstream_stream* stream);

/* Bytes read so far, and the peak of bytes reserved against the memory limit. */
TENSORSTREAM_API int tensorstream_stream_stats(const tensorstream_stream* stream,
                                               uint64_t* bytes_read, uint64_t* peak_reserved_bytes);

/* ----------------------------------------------------------------------------------------
 * Completed tensors. The data pointer stays valid until tensorstream_tensor_release.
 * A tensor's bytes count against the stream's memory limit until it is released, or
 * until tensorstream_tensor_keep says the caller keeps them (see below).
 * -------------------------------------------------------------------------------------- */
/* Accessors; REQUIRES: tensor is a non-NULL tensor taken from stream_next. */
TENSORSTREAM_API size_t tensorstream_tensor_file_index(const tensorstream_tensor* tensor);
TENSORSTREAM_API size_t tensorstream_tensor_index(const tensorstream_tensor* tensor);
/* The name as a C string: a name holding U+0000 (valid JSON) ends early there; use
 * tensorstream_tensor_name_size for its full length. */
TENSORSTREAM_API const char* tensorstream_tensor_name(const tensorstream_tensor* tensor);
TENSORSTREAM_API size_t tensorstream_tensor_name_size(const tensorstream_tensor* tensor);
TENSORSTREAM_API const char* tensorstream_tensor_dtype(const tensorstream_tensor* tensor);
TENSORSTREAM_API size_t tensorstream_tensor_ndim(const tensorstream_tensor* tensor);
TENSORSTREAM_API const int64_t* tensorstream_tensor_shape(const tensorstream_tensor* tensor);
TENSORSTREAM_API uint64_t tensorstream_tensor_nbytes(const tensorstream_tensor* tensor);
/* Host memory, or device memory on tensorstream_tensor_device() when that is >= 0. */
TENSORSTREAM_API const void* tensorstream_tensor_data(const tensorstream_tensor* tensor);
/* -1 for host memory, else the CUDA device index of the data. */
TENSORSTREAM_API int tensorstream_tensor_device(const tensorstream_tensor* tensor);

/* The caller keeps this tensor's bytes beyond the streaming: they stop counting against
 * the memory limit now (so reading goes on), and are freed only at release. Used by
 * bindings that hand the bytes to the user without a copy. */
TENSORSTREAM_API void tensorstream_tensor_keep(tensorstream_tensor* tensor);

/* Frees the tensor (and its bytes, once no other tensor shares their buffer). May be
 * called from any thread, also after the stream was destroyed. */
TENSORSTREAM_API void tensorstream_tensor_release(tensorstream_tensor* tensor);

/* ----------------------------------------------------------------------------------------
 * Listing and downloading: a local directory or an object-store prefix (s3://bucket/dir,
 * gs://bucket/dir, az://container/dir).
 * -------------------------------------------------------------------------------------- */
typedef struct tensorstream_listing tensorstream_listing;

/* Lists the files under `uri` (sorted by URI). recursive=0 also lists subdirectories /
 * common prefixes (is_directory = 1; their uri and relative path end with '/', for every
 * backend); recursive=1 lists every file below, files only. */
TENSORSTREAM_API int tensorstream_list(const tensorstream_options* options, const char* uri,
                                       int recursive, tensorstream_listing** out);
TENSORSTREAM_API void tensorstream_listing_destroy(tensorstream_listing* listing);
TENSORSTREAM_API size_t tensorstream_listing_count(const tensorstream_listing* listing);
/* REQUIRES: index < count. `uri` is what add_file accepts; `relative` is the path below the
 * listed directory ('/'-separated; untrusted for object stores: may contain ".."). */
TENSORSTREAM_API const char* tensorstream_listing_uri(const tensorstream_listing* listing,
                                                      size_t index);
TENSORSTREAM_API const char* tensorstream_listing_relative(const tensorstream_listing* listing,
                                                           size_t index);
TENSORSTREAM_API uint64_t tensorstream_listing_size(const tensorstream_listing* listing,
                                                    size_t index);
TENSORSTREAM_API int tensorstream_listing_is_directory(const tensorstream_listing* listing,
                                                       size_t index);

/* OK when `relative` names a path inside a destination directory; INVALID_ARGUMENT, with
 * the reason, when it is absolute or has "."/".."/empty segments, a backslash or a NUL.
 * Lets a front check every key of a listing before it writes anything. */
TENSORSTREAM_API int tensorstream_check_relative_path(const char* relative);

/* Progress of a download: bytes written so far; called on the calling thread. */
typedef void (*tensorstream_progress_fn)(uint64_t bytes_done, void* user_data);

/* Downloads `uri` to `dst_dir`/`relative` through the streaming pipeline (concurrency,
 * retries and memory limit of `options`). INVALID_ARGUMENT, before anything is written,
 * when `relative` is absolute or has "."/".."/empty segments: nothing is ever written
 * outside `dst_dir`. The file appears under its name only once complete. `progress` may
 * be NULL. */
TENSORSTREAM_API int tensorstream_download(const tensorstream_options* options, const char* uri,
                                           const char* dst_dir, const char* relative,
                                           tensorstream_progress_fn progress, void* user_data,
                                           uint64_t* bytes_written);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TENSORSTREAM_TENSORSTREAM_H_ */
