// CudaApi over the real CUDA runtime, resolved with dlopen/dlsym. Only the runtime's C
// ABI is used (int error codes, opaque pointers), so no CUDA header is needed to build.
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "cuda/cuda_api.h"

namespace tensorstream {

namespace {

// Values from the CUDA runtime's ABI (driver_types.h), stable across releases.
constexpr int kCudaSuccess = 0;
constexpr int kMemcpyHostToDevice = 1;
constexpr unsigned kHostAllocPortable = 1;     // pinned for every context/device
constexpr unsigned kHostRegisterReadOnly = 8;  // the device may only read the memory
constexpr unsigned kStreamNonBlocking = 1;
constexpr unsigned kEventDisableTiming = 2;

struct CudaFunctions {
  int (*GetDeviceCount)(int*);
  int (*GetDevice)(int*);
  int (*SetDevice)(int);
  int (*HostAlloc)(void**, size_t, unsigned);
  int (*FreeHost)(void*);
  int (*HostRegister)(void*, size_t, unsigned);
  int (*HostUnregister)(void*);
  int (*Malloc)(void**, size_t);
  int (*Free)(void*);
  int (*StreamCreateWithFlags)(void**, unsigned);
  int (*StreamDestroy)(void*);
  int (*MemcpyAsync)(void*, const void*, size_t, int, void*);
  int (*EventCreateWithFlags)(void**, unsigned);
  int (*EventDestroy)(void*);
  int (*EventRecord)(void*, void*);
  int (*EventSynchronize)(void*);
  const char* (*GetErrorString)(int);
};

class CudaRuntime final : public CudaApi {
 public:
  explicit CudaRuntime(CudaFunctions f) : f_(f) {}

  Result<int> DeviceCount() override {
    int count = 0;
    TS_RETURN_IF_ERROR(Check(f_.GetDeviceCount(&count), "cudaGetDeviceCount"));
    return count;
  }
  Result<int> GetDevice() override {
    int device = 0;
    TS_RETURN_IF_ERROR(Check(f_.GetDevice(&device), "cudaGetDevice"));
    return device;
  }
  Status SetDevice(int device) override {
    return Check(f_.SetDevice(device), "cudaSetDevice(" + std::to_string(device) + ")");
  }
  Result<void*> HostAllocPinned(size_t bytes) override {
    void* ptr = nullptr;
    TS_RETURN_IF_ERROR(Check(f_.HostAlloc(&ptr, bytes, kHostAllocPortable),
                             "cudaHostAlloc(" + std::to_string(bytes) + " bytes)"));
    return ptr;
  }
  void HostFreePinned(void* ptr) override { f_.FreeHost(ptr); }
  Status HostRegisterReadOnly(const void* ptr, size_t bytes) override {
    // The runtime's signature takes void*; with kHostRegisterReadOnly it never writes.
    return Check(f_.HostRegister(const_cast<void*>(ptr), bytes, kHostRegisterReadOnly),
                 "cudaHostRegister(" + std::to_string(bytes) + " bytes, read-only)");
  }
  Status HostUnregister(const void* ptr) override {
    return Check(f_.HostUnregister(const_cast<void*>(ptr)), "cudaHostUnregister");
  }
  Result<void*> DeviceAlloc(size_t bytes) override {
    void* ptr = nullptr;
    TS_RETURN_IF_ERROR(
        Check(f_.Malloc(&ptr, bytes), "cudaMalloc(" + std::to_string(bytes) + " bytes)"));
    return ptr;
  }
  void DeviceFree(void* ptr) override { f_.Free(ptr); }
  Result<StreamHandle> StreamCreate() override {
    void* stream = nullptr;
    TS_RETURN_IF_ERROR(
        Check(f_.StreamCreateWithFlags(&stream, kStreamNonBlocking), "cudaStreamCreate"));
    return stream;
  }
  void StreamDestroy(StreamHandle stream) override { f_.StreamDestroy(stream); }
  Status CopyToDeviceAsync(void* dst, const void* src, size_t bytes, StreamHandle stream) override {
    return Check(f_.MemcpyAsync(dst, src, bytes, kMemcpyHostToDevice, stream), "cudaMemcpyAsync");
  }
  Result<EventHandle> EventCreate() override {
    void* event = nullptr;
    TS_RETURN_IF_ERROR(
        Check(f_.EventCreateWithFlags(&event, kEventDisableTiming), "cudaEventCreate"));
    return event;
  }
  void EventDestroy(EventHandle event) override { f_.EventDestroy(event); }
  Status EventRecord(EventHandle event, StreamHandle stream) override {
    return Check(f_.EventRecord(event, stream), "cudaEventRecord");
  }
  Status EventSynchronize(EventHandle event) override {
    return Check(f_.EventSynchronize(event), "cudaEventSynchronize");
  }

 private:
  Status Check(int rc, const std::string& call) const {
    if (rc == kCudaSuccess) return Status::Ok();
    return Unavailable(call + " failed: " + f_.GetErrorString(rc) + " (CUDA error " +
                       std::to_string(rc) + ")");
  }
  const CudaFunctions f_;
};

template <typename Fn>
bool Resolve(void* lib, const char* name, Fn* fn) {
  *fn = reinterpret_cast<Fn>(::dlsym(lib, name));
  return *fn != nullptr;
}

Result<std::shared_ptr<CudaApi>> Load() {
  std::vector<std::string> names;
  if (const char* path = std::getenv("TENSORSTREAM_CUDART"); path && *path) names.push_back(path);
  for (const char* n :
       {"libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0", "libcudart.so"}) {
    names.push_back(n);
  }
  std::string tried;
  void* lib = nullptr;
  for (const std::string& name : names) {
    lib = ::dlopen(name.c_str(), RTLD_NOW | RTLD_GLOBAL);
    if (lib != nullptr) break;
    tried += (tried.empty() ? "" : "; ") + std::string(::dlerror());
  }
  if (lib == nullptr) {
    return Unavailable("CUDA is not available: cannot load the CUDA runtime (" + tried +
                       "); set TENSORSTREAM_CUDART to its path");
  }
  CudaFunctions f{};
  const bool ok =
      Resolve(lib, "cudaGetDeviceCount", &f.GetDeviceCount) &&
      Resolve(lib, "cudaGetDevice", &f.GetDevice) && Resolve(lib, "cudaSetDevice", &f.SetDevice) &&
      Resolve(lib, "cudaHostAlloc", &f.HostAlloc) && Resolve(lib, "cudaFreeHost", &f.FreeHost) &&
      Resolve(lib, "cudaHostRegister", &f.HostRegister) &&
      Resolve(lib, "cudaHostUnregister", &f.HostUnregister) &&
      Resolve(lib, "cudaMalloc", &f.Malloc) && Resolve(lib, "cudaFree", &f.Free) &&
      Resolve(lib, "cudaStreamCreateWithFlags", &f.StreamCreateWithFlags) &&
      Resolve(lib, "cudaStreamDestroy", &f.StreamDestroy) &&
      Resolve(lib, "cudaMemcpyAsync", &f.MemcpyAsync) &&
      Resolve(lib, "cudaEventCreateWithFlags", &f.EventCreateWithFlags) &&
      Resolve(lib, "cudaEventDestroy", &f.EventDestroy) &&
      Resolve(lib, "cudaEventRecord", &f.EventRecord) &&
      Resolve(lib, "cudaEventSynchronize", &f.EventSynchronize) &&
      Resolve(lib, "cudaGetErrorString", &f.GetErrorString);
  if (!ok)
    return Unavailable("CUDA is not available: the CUDA runtime lacks " + std::string(::dlerror()));
  auto runtime = std::make_shared<CudaRuntime>(f);
  const Result<int> count_or = runtime->DeviceCount();
  if (!count_or.ok()) return Unavailable("CUDA is not available: " + count_or.status().message());
  const int count = *count_or;
  if (count == 0) return Unavailable("CUDA is not available: no CUDA device found");
  return std::shared_ptr<CudaApi>(runtime);
}

}  // namespace

Result<std::shared_ptr<CudaApi>> LoadCudaRuntime() {
  // Success is kept for the process; failure is retried, since the runtime may become
  // loadable later (e.g. once torch has loaded its own copy).
  static std::mutex mu;
  static std::shared_ptr<CudaApi> loaded;
  std::lock_guard lock(mu);
  if (loaded == nullptr) {
    TS_ASSIGN_OR_RETURN(loaded, Load());
  }
  return loaded;
}

Result<int> ParseDevice(const std::string& device) {
  if (device == "cpu") return -1;
  if (device == "cuda") return 0;
  if (device.rfind("cuda:", 0) == 0 && device.size() > 5 && device.size() < 9) {
    int index = 0;
    for (size_t i = 5; i < device.size(); ++i) {
      if (device[i] < '0' || device[i] > '9')
        return InvalidArgument("invalid device '" + device + "'");
      index = index * 10 + (device[i] - '0');
    }
    return index;
  }
  return InvalidArgument("invalid device '" + device + "': use cpu, cuda or cuda:N");
}

}  // namespace tensorstream
