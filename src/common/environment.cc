#include "common/environment.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/text.h"

namespace tensorstream {

namespace {

class ProcessEnvironment final : public Environment {
 public:
  std::optional<std::string> Get(const std::string& name) const override {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  }
};

}  // namespace

const Environment& Environment::Process() {
  static const ProcessEnvironment env;
  return env;
}

std::optional<std::string> ReadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<std::string> NonEmpty(const Environment& env, const std::string& name) {
  std::optional<std::string> v = env.Get(name);
  if (v && v->empty()) return std::nullopt;
  return v;
}

std::optional<bool> EnvFlag(const Environment& env, const std::string& name) {
  const std::optional<std::string> v = env.Get(name);
  if (!v) return std::nullopt;
  bool ok = false;
  const bool value = ParseBool(*v, &ok);
  if (!ok) return std::nullopt;
  return value;
}

}  // namespace tensorstream
