#pragma once

#include <filesystem>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "settings.hpp"

namespace workflowd {

// A config the daemon refuses. what() is one line an operator can act on:
//   <file>:<line>:<column>: <yaml.path>: <problem>
// or "<file>: <problem>" when there is no position (an unreadable file).
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// What a config may hold that works but should be fixed, such as a password file others can
// read: one line each, positioned as a ConfigError is. The caller logs them.
using ConfigWarnings = std::vector<std::string>;

// Reads and validates a workflowd.yaml file. Every key is optional (the defaults are in
// settings.hpp); an unknown key, a wrong type or an out-of-range value is an error. Relative
// paths resolve against the file's directory, a password_file is read here, and `workers: 0`
// comes back as the number of cores. Throws ConfigError; adds to warnings when given.
Settings LoadConfig(const std::filesystem::path& file, ConfigWarnings* warnings = nullptr);

// The same from text; file_name is used in messages and to resolve relative paths (its parent
// directory). Throws ConfigError.
Settings ParseConfig(std::string_view yaml, const std::filesystem::path& file_name,
                     ConfigWarnings* warnings = nullptr);

// trace | debug | info | warning | error, as in the config file and --log-level. Throws
// ConfigError listing the allowed values.
LogLevel ParseLogLevel(std::string_view text);

}  // namespace workflowd
