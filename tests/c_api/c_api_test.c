/* The C API exercised from plain C99: builds a small SafeTensors file by hand, streams
 * it, checks every byte, lists and downloads it, and checks the error paths' status codes
 * and messages. */
#define _XOPEN_SOURCE 700 /* mkdtemp */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tensorstream/tensorstream.h"

static int failures = 0;
#define EXPECT(cond)                                                                 \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "%s:%d: expectation failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                                    \
    }                                                                                \
  } while (0)

static void record_progress(uint64_t bytes_done, void* user_data) {
  *(uint64_t*)user_data = bytes_done;
}

static void write_file(const char* path, const char* header, const unsigned char* data,
                       size_t data_len) {
  FILE* f = fopen(path, "wb");
  uint64_t n = strlen(header);
  unsigned char prefix[8];
  for (int i = 0; i < 8; ++i) prefix[i] = (unsigned char)(n >> (8 * i));
  fwrite(prefix, 1, 8, f);
  fwrite(header, 1, n, f);
  fwrite(data, 1, data_len, f);
  fclose(f);
}

int main(void) {
  /* A directory of this run's own, removed at the end. */
  const char* tmp = getenv("TMPDIR");
  char work[2048];
  snprintf(work, sizeof work, "%.1900s/tensorstream-c-api-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (mkdtemp(work) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  char path[4096];
  char bad[4096];
  snprintf(path, sizeof path, "%s/c_api_ok.safetensors", work);
  snprintf(bad, sizeof bad, "%s/c_api_bad.safetensors", work);
  const char* header =
      "{\"__metadata__\":{\"k\":\"v\"},"
      "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
      "\"b\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[16,19]},"
      "\"z\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[19,19]}}";
  unsigned char data[19];
  for (int i = 0; i < 19; ++i) data[i] = (unsigned char)(i * 7 + 1);
  write_file(path, header, data, sizeof data);

  EXPECT(strlen(tensorstream_version()) > 0);

  tensorstream_options* options = NULL;
  EXPECT(tensorstream_options_create(&options) == TENSORSTREAM_OK);
  EXPECT(tensorstream_options_set_concurrency(options, 0) == TENSORSTREAM_INVALID_ARGUMENT);
  EXPECT(strstr(tensorstream_last_error(), "concurrency") != NULL);
  EXPECT(tensorstream_options_set_memory_limit(options, -5) == TENSORSTREAM_INVALID_ARGUMENT);
  EXPECT(tensorstream_options_set_concurrency(options, 4) == TENSORSTREAM_OK);
  EXPECT(tensorstream_options_set_memory_limit(options, 0) == TENSORSTREAM_OK);
  EXPECT(tensorstream_options_create(NULL) == TENSORSTREAM_INVALID_ARGUMENT);
  EXPECT(tensorstream_options_set(options, "no.such.key", "1") == TENSORSTREAM_INVALID_ARGUMENT);
  EXPECT(strstr(tensorstream_last_error(), "no.such.key") != NULL);
  EXPECT(tensorstream_options_set(options, "host_memory", "shared") ==
         TENSORSTREAM_INVALID_ARGUMENT);
  EXPECT(tensorstream_options_set(options, "concurrency", "two") == TENSORSTREAM_INVALID_ARGUMENT);
  EXPECT(tensorstream_options_set(options, "host_memory", "private") == TENSORSTREAM_OK);
  EXPECT(tensorstream_options_set(options, "concurrency", " 3 ") == TENSORSTREAM_OK);
  EXPECT(tensorstream_options_set(options, "s3.region", NULL) == TENSORSTREAM_OK);

  tensorstream_stream* stream = NULL;
  EXPECT(tensorstream_stream_create(options, &stream) == TENSORSTREAM_OK);
  tensorstream_options_destroy(options);
  size_t file_index = 99;
  EXPECT(tensorstream_stream_add_file(stream, path, &file_index) == TENSORSTREAM_OK);
  EXPECT(file_index == 0);
  size_t count = 0;
  EXPECT(tensorstream_stream_tensor_count(stream, 0, &count) == TENSORSTREAM_OK && count == 3);
  const char* metadata = NULL;
  EXPECT(tensorstream_stream_metadata_json(stream, 0, &metadata) == TENSORSTREAM_OK);
  EXPECT(metadata && strcmp(metadata, "{\"k\":\"v\"}") == 0);
  /* All tensors in one call, sorted by offset. */
  const char* tensors = NULL;
  char expected[512];
  const size_t start = 8 + strlen(header);
  snprintf(expected, sizeof expected,
           "{\"data_offset\":%zu,\"name\":[\"a\",\"b\",\"z\"],\"dtype\":[\"F32\",\"U8\",\"BF16\"],"
           "\"shape\":[[2,2],[3],[0]],\"offset\":[%zu,%zu,%zu],\"nbytes\":[16,3,0]}",
           start, start, start + 16, start + 19);
  EXPECT(tensorstream_stream_tensors_json(stream, 0, &tensors) == TENSORSTREAM_OK);
  EXPECT(tensors && strcmp(tensors, expected) == 0);
  EXPECT(tensorstream_stream_tensor_count(stream, 7, &count) == TENSORSTREAM_INVALID_ARGUMENT);
  EXPECT(tensorstream_stream_next(stream, NULL) == TENSORSTREAM_INVALID_ARGUMENT);

  EXPECT(tensorstream_stream_start(stream) == TENSORSTREAM_OK);
  EXPECT(tensorstream_stream_add_file(stream, path, NULL) == TENSORSTREAM_FAILED_PRECONDITION);
  int seen = 0;
  tensorstream_tensor* t = NULL;
  int status;
  while ((status = tensorstream_stream_next(stream, &t)) == TENSORSTREAM_OK) {
    const char* name = tensorstream_tensor_name(t);
    const unsigned char* bytes = (const unsigned char*)tensorstream_tensor_data(t);
    if (strcmp(name, "a") == 0) {
      EXPECT(strcmp(tensorstream_tensor_dtype(t), "F32") == 0);
      EXPECT(tensorstream_tensor_ndim(t) == 2 && tensorstream_tensor_shape(t)[1] == 2);
      EXPECT(tensorstream_tensor_nbytes(t) == 16 && memcmp(bytes, data, 16) == 0);
      seen |= 1;
    } else if (strcmp(name, "b") == 0) {
      EXPECT(tensorstream_tensor_nbytes(t) == 3 && memcmp(bytes, data + 16, 3) == 0);
      seen |= 2;
    } else if (strcmp(name, "z") == 0) {
      EXPECT(tensorstream_tensor_nbytes(t) == 0 && tensorstream_tensor_shape(t)[0] == 0);
      seen |= 4;
    }
    tensorstream_tensor_release(t);
  }
  EXPECT(status == TENSORSTREAM_END_OF_STREAM);
  EXPECT(seen == 7);
  uint64_t bytes_read = 0, peak = 0;
  EXPECT(tensorstream_stream_stats(stream, &bytes_read, &peak) == TENSORSTREAM_OK);
  EXPECT(bytes_read >= 19 && peak >= 16);
  tensorstream_stream_destroy(stream);

  /* The same file through next_batch: every tensor once, data inside its block. */
  tensorstream_options_create(&options);
  tensorstream_stream_create(options, &stream);
  tensorstream_options_destroy(options);
  EXPECT(tensorstream_stream_add_file(stream, path, NULL) == TENSORSTREAM_OK);
  EXPECT(tensorstream_stream_start(stream) == TENSORSTREAM_OK);
  tensorstream_delivery batch[2];
  size_t got = 0, total = 0;
  seen = 0;
  while ((status = tensorstream_stream_next_batch(stream, batch, 2, TENSORSTREAM_BATCH_KEEP, -1,
                                                  &got)) == TENSORSTREAM_OK) {
    EXPECT(got >= 1 && got <= 2);
    for (size_t i = 0; i < got; ++i) {
      EXPECT(batch[i].file_index == 0 && batch[i].tensor_index < 3 && batch[i].device == -1);
      seen |= 1 << batch[i].tensor_index;
      if (batch[i].nbytes > 0) {
        const char* block = (const char*)batch[i].block;
        const char* at = (const char*)batch[i].data;
        EXPECT(block != NULL && at >= block &&
               at + batch[i].nbytes <= block + batch[i].block_bytes);
      }
      if (batch[i].tensor_index == 0) EXPECT(memcmp(batch[i].data, data, 16) == 0);
      if (batch[i].tensor_index == 1) EXPECT(memcmp(batch[i].data, data + 16, 3) == 0);
    }
    total += got;
    tensorstream_deliveries_release(batch, got);
  }
  EXPECT(status == TENSORSTREAM_END_OF_STREAM && got == 0);
  EXPECT(total == 3 && seen == 7);
  EXPECT(tensorstream_stream_next_batch(stream, batch, 0, 0, -1, &got) ==
         TENSORSTREAM_INVALID_ARGUMENT);
  tensorstream_stream_destroy(stream);

  /* A corrupt file: the error names the file, the tensor and the cause. */
  write_file(bad, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,15]}}", data, 15);
  tensorstream_options_create(&options);
  tensorstream_stream_create(options, &stream);
  tensorstream_options_destroy(options);
  EXPECT(tensorstream_stream_add_file(stream, bad, NULL) == TENSORSTREAM_FORMAT_ERROR);
  EXPECT(strstr(tensorstream_last_error(), bad) != NULL);
  EXPECT(strstr(tensorstream_last_error(), "'w'") != NULL);
  EXPECT(tensorstream_stream_add_file(stream, "/nonexistent/x.safetensors", NULL) ==
         TENSORSTREAM_NOT_FOUND);
  EXPECT(strcmp(tensorstream_status_name(TENSORSTREAM_NOT_FOUND), "NOT_FOUND") == 0);
  tensorstream_stream_destroy(stream);
  tensorstream_stream_destroy(NULL);
  tensorstream_tensor_release(NULL);

  /* Download into a nested directory, list it back, refuse a path leaving dst. */
  char dst[2048], copy[2200], escaped[2200];
  snprintf(dst, sizeof dst, "%.2000s/c_api_download", work);
  snprintf(copy, sizeof copy, "%s/nested/copy.safetensors", dst);
  snprintf(escaped, sizeof escaped, "%.2000s/escaped.bin", work);
  tensorstream_options_create(&options);
  uint64_t written = 0, progressed = 0;
  EXPECT(tensorstream_download(options, path, dst, "nested/copy.safetensors", record_progress,
                               &progressed, &written) == TENSORSTREAM_OK);
  struct stat st;
  EXPECT(stat(copy, &st) == 0 && (uint64_t)st.st_size == written);
  EXPECT(written == 8 + strlen(header) + sizeof data && progressed == written);
  EXPECT(tensorstream_download(options, path, dst, "../escaped.bin", NULL, NULL, NULL) ==
         TENSORSTREAM_INVALID_ARGUMENT);
  EXPECT(strstr(tensorstream_last_error(), "../escaped.bin") != NULL);
  EXPECT(stat(escaped, &st) != 0);
  EXPECT(tensorstream_download(options, NULL, dst, "x", NULL, NULL, NULL) ==
         TENSORSTREAM_INVALID_ARGUMENT);

  tensorstream_listing* listing = NULL;
  EXPECT(tensorstream_list(options, dst, 0, &listing) == TENSORSTREAM_OK);
  EXPECT(tensorstream_listing_count(listing) == 1);
  EXPECT(strcmp(tensorstream_listing_relative(listing, 0), "nested/") == 0);
  EXPECT(tensorstream_listing_is_directory(listing, 0) == 1);
  tensorstream_listing_destroy(listing);
  EXPECT(tensorstream_list(options, dst, 1, &listing) == TENSORSTREAM_OK);
  EXPECT(tensorstream_listing_count(listing) == 1);
  EXPECT(strcmp(tensorstream_listing_relative(listing, 0), "nested/copy.safetensors") == 0);
  EXPECT(strcmp(tensorstream_listing_uri(listing, 0), copy) == 0);
  EXPECT(tensorstream_listing_size(listing, 0) == written);
  EXPECT(tensorstream_listing_is_directory(listing, 0) == 0);
  tensorstream_listing_destroy(listing);
  EXPECT(tensorstream_list(options, "/nonexistent/dir", 1, &listing) == TENSORSTREAM_NOT_FOUND);
  EXPECT(listing == NULL);
  tensorstream_listing_destroy(NULL);
  tensorstream_options_destroy(options);

  char cleanup[4200];
  snprintf(cleanup, sizeof cleanup, "rm -rf '%s'", work);
  if (system(cleanup) != 0) fprintf(stderr, "c_api_test: could not remove %s\n", work);
  if (failures == 0) printf("c_api_test: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
