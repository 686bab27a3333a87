// The process-wide cache of object-store clients, one per backend: a client (with its
// endpoint, credentials and their tokens, resolved once) is shared by every file and stream
// whose settings and environment resolve the same way.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/environment.h"
#include "common/status.h"

namespace tensorstream {

// The key of a client: `settings` (values of the backend's settings, in a fixed order) and
// the values of the environment `variables` it reads, each NUL-terminated.
template <typename Settings, typename Variables>
std::string ClientCacheKey(const Settings& settings, const Variables& variables,
                           const Environment& env) {
  std::string key;
  for (const std::string& value : settings) key += value + '\0';
  for (const char* name : variables) key += env.Get(name).value_or("") + '\0';
  return key;
}

template <typename Client>
class ClientCache {
 public:
  // The cached client for `key`, or one made by `create` (a failure is not cached).
  // Thread-safe; `create` runs under the cache's lock, so a client is made once.
  Result<std::shared_ptr<Client>> Get(
      const std::string& key, const std::function<Result<std::shared_ptr<Client>>()>& create) {
    std::lock_guard lock(mutex_);
    if (const auto it = clients_.find(key); it != clients_.end()) return it->second;
    TS_ASSIGN_OR_RETURN(std::shared_ptr<Client> client, create());
    if (clients_.size() >= kMaxClients) clients_.clear();  // settings that always change
    clients_.emplace(key, client);
    return client;
  }

 private:
  static constexpr size_t kMaxClients = 64;
  std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Client>> clients_;
};

}  // namespace tensorstream
