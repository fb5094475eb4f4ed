// A fresh folder (by default under the system temp dir: $TMPDIR or /tmp),
// removed with everything in it when the object goes. For every test suite.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace wep::test {

class TempDir {
 public:
  // Made in `base` when given (it must exist), else in the system temp dir.
  explicit TempDir(const std::string& prefix = "wep-test", const std::filesystem::path& base = {}) {
    const auto folder = base.empty() ? std::filesystem::temp_directory_path() : base;
    std::string pattern = (folder / (prefix + "-XXXXXX")).string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace wep::test
