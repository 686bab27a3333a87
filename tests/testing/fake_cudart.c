// A stand-in for the CUDA runtime library, for the Python tests of the device path on
// machines without a GPU: the library loads it through TENSORSTREAM_CUDART as it would
// load libcudart. "Device memory" is host memory (so a test can read it), copies are
// synchronous memcpy, streams and events are tokens. It counts the device memory that is
// live and its peak, which tests read through the fake_cudart_* functions, so that they
// can check that a stream frees what it allocated and stays within its limit.
//
// The C++ tests use FakeCuda (fake_cuda.h) instead, which also injects failures; this
// file only has to be faithful enough for the Python binding's ownership of device
// tensors. Thread-safe: the counters are atomics, the rest keeps no state.
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { kSuccess = 0, kErrorMemoryAllocation = 2, kErrorInvalidValue = 1 };

static atomic_llong live_bytes;
static atomic_llong peak_bytes;
static atomic_llong allocations;

// Each allocation is preceded by a 64-byte header holding its size (64 keeps the bytes
// after it aligned as cudaMalloc's are, to at least 64).
enum { kHeader = 64 };

int cudaGetDeviceCount(int* count) {
  *count = 1;
  return kSuccess;
}
int cudaGetDevice(int* device) {
  *device = 0;
  return kSuccess;
}
int cudaSetDevice(int device) { return device == 0 ? kSuccess : kErrorInvalidValue; }

int cudaHostAlloc(void** ptr, size_t bytes, unsigned int flags) {
  (void)flags;
  *ptr = malloc(bytes ? bytes : 1);
  return *ptr ? kSuccess : kErrorMemoryAllocation;
}
int cudaFreeHost(void* ptr) {
  free(ptr);
  return kSuccess;
}
int cudaHostRegister(void* ptr, size_t bytes, unsigned int flags) {
  (void)ptr, (void)bytes, (void)flags;
  return kSuccess;
}
int cudaHostUnregister(void* ptr) {
  (void)ptr;
  return kSuccess;
}

int cudaMalloc(void** ptr, size_t bytes) {
  char* block = aligned_alloc(kHeader, kHeader + ((bytes + kHeader - 1) / kHeader) * kHeader);
  if (block == NULL) return kErrorMemoryAllocation;
  memcpy(block, &bytes, sizeof bytes);
  const long long now = atomic_fetch_add(&live_bytes, (long long)bytes) + (long long)bytes;
  long long peak = atomic_load(&peak_bytes);
  while (now > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, now)) {
  }
  atomic_fetch_add(&allocations, 1);
  *ptr = block + kHeader;
  return kSuccess;
}
int cudaFree(void* ptr) {
  if (ptr == NULL) return kSuccess;
  char* block = (char*)ptr - kHeader;
  size_t bytes;
  memcpy(&bytes, block, sizeof bytes);
  atomic_fetch_sub(&live_bytes, (long long)bytes);
  free(block);
  return kSuccess;
}

int cudaStreamCreateWithFlags(void** stream, unsigned int flags) {
  (void)flags;
  static char token;
  *stream = &token;
  return kSuccess;
}
int cudaStreamDestroy(void* stream) {
  (void)stream;
  return kSuccess;
}
int cudaMemcpyAsync(void* dst, const void* src, size_t bytes, int kind, void* stream) {
  (void)kind, (void)stream;
  memcpy(dst, src, bytes);
  return kSuccess;
}
int cudaEventCreateWithFlags(void** event, unsigned int flags) {
  (void)flags;
  static char token;
  *event = &token;
  return kSuccess;
}
int cudaEventDestroy(void* event) {
  (void)event;
  return kSuccess;
}
int cudaEventRecord(void* event, void* stream) {
  (void)event, (void)stream;
  return kSuccess;
}
int cudaEventSynchronize(void* event) {
  (void)event;
  return kSuccess;
}
const char* cudaGetErrorString(int error) {
  return error == kSuccess ? "no error" : "fake CUDA runtime error";
}

// For the tests: device bytes allocated and not yet freed, their peak, and how many
// allocations were made, since the process started or the last reset.
long long fake_cudart_live_bytes(void) { return atomic_load(&live_bytes); }
long long fake_cudart_peak_bytes(void) { return atomic_load(&peak_bytes); }
long long fake_cudart_allocations(void) { return atomic_load(&allocations); }
void fake_cudart_reset_peak(void) { atomic_store(&peak_bytes, atomic_load(&live_bytes)); }
