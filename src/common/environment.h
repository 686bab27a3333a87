// Reading the process environment, behind an interface so that tests can substitute a map
// (credential chains and endpoint rules are tested without touching the real environment).
#pragma once

#include <map>
#include <optional>
#include <string>

namespace tensorstream {

class Environment {
 public:
  virtual ~Environment() = default;
  virtual std::optional<std::string> Get(const std::string& name) const = 0;
  // The real process environment.
  static const Environment& Process();
};

class MapEnvironment final : public Environment {
 public:
  explicit MapEnvironment(std::map<std::string, std::string> vars) : vars_(std::move(vars)) {}
  std::optional<std::string> Get(const std::string& name) const override {
    auto it = vars_.find(name);
    if (it == vars_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::map<std::string, std::string> vars_;
};

// The whole of a small configuration file (credentials, profiles), or nullopt when it
// cannot be read.
std::optional<std::string> ReadConfigFile(const std::string& path);

// A variable's value, or nullopt when it is unset or empty.
std::optional<std::string> NonEmpty(const Environment& env, const std::string& name);

// true for "1", "true", "yes", "on" (any case); false for "0", "false", "no", "off";
// nullopt when unset, empty or anything else.
std::optional<bool> EnvFlag(const Environment& env, const std::string& name);

}  // namespace tensorstream
