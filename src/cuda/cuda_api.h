// CudaApi: the few CUDA runtime calls the pipeline makes, behind an interface.
//
// The real implementation loads the CUDA runtime with dlopen at run time (LoadCudaRuntime),
// so one build of the library runs on machines with and without GPUs and CI compiles every
// line of the GPU path. Tests substitute FakeCuda (tests/testing), which emulates
// asynchronous copies on host memory and injects failures.
//
// Threading: every method may be called from any thread concurrently, as the CUDA runtime
// allows. Streams and events are opaque handles owned by the caller of *Create.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "common/status.h"

namespace tensorstream {

class CudaApi {
 public:
  using StreamHandle = void*;
  using EventHandle = void*;

  virtual ~CudaApi() = default;

  virtual Result<int> DeviceCount() = 0;
  // The calling thread's current device, and making `device` current for it.
  virtual Result<int> GetDevice() = 0;
  virtual Status SetDevice(int device) = 0;
  // Page-locked host memory, so copies from it run at bus speed and asynchronously.
  virtual Result<void*> HostAllocPinned(size_t bytes) = 0;
  virtual void HostFreePinned(void* ptr) = 0;
  // Page-locks existing host memory (cudaHostRegister with cudaHostRegisterReadOnly) so
  // that copies from it run as from pinned memory; the device only ever reads it, which
  // is what lets a read-only file mapping be registered. `ptr` is page aligned. Fails if
  // any page of the range is registered already (ranges must not overlap), and when the
  // device or driver does not support read-only registration.
  virtual Status HostRegisterReadOnly(const void* ptr, size_t bytes) = 0;
  // Undoes HostRegisterReadOnly(ptr, …). No copy from the range may still be pending.
  virtual Status HostUnregister(const void* ptr) = 0;
  virtual Result<void*> DeviceAlloc(size_t bytes) = 0;
  virtual void DeviceFree(void* ptr) = 0;
  virtual Result<StreamHandle> StreamCreate() = 0;  // non-blocking w.r.t. the legacy stream
  virtual void StreamDestroy(StreamHandle stream) = 0;
  virtual Status CopyToDeviceAsync(void* device_dst, const void* host_src, size_t bytes,
                                   StreamHandle stream) = 0;
  virtual Result<EventHandle> EventCreate() = 0;  // timing disabled: cheaper to record
  virtual void EventDestroy(EventHandle event) = 0;
  virtual Status EventRecord(EventHandle event, StreamHandle stream) = 0;
  // Blocks until the work recorded before `event` finished; its error if it failed.
  virtual Status EventSynchronize(EventHandle event) = 0;
};

// Loads the CUDA runtime (TENSORSTREAM_CUDART if set, else libcudart.so.13, .12, .11.0,
// libcudart.so — an already loaded one, such as torch's, is found by its soname) and
// checks that a device exists. Unavailable, naming what was tried and why, otherwise.
// The runtime is loaded once per process and never unloaded.
Result<std::shared_ptr<CudaApi>> LoadCudaRuntime();

// Parses "cuda", "cuda:N" or "cpu"; -1 for the CPU. InvalidArgument otherwise.
Result<int> ParseDevice(const std::string& device);

}  // namespace tensorstream
