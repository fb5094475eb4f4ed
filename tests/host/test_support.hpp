// Shared helpers for the host suites: temporary folders, JSON lookups, and
// a plugin-is-mapped probe. Nothing here needs the harness (host_stub).
#pragma once

#include <dlfcn.h>
#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace test_support {

// A fresh folder under the system temp dir, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "wep-host-test-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

inline void write_file(const std::filesystem::path& file, const std::string& text) {
  std::ofstream out(file, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + file.string());
}

inline std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The value at a JSON pointer (e.g. "/effects/event_log/delivered") in `json`.
// Throws if the JSON is invalid or the pointer resolves to nothing.
inline rapidjson::Document parse(const std::string& json) {
  rapidjson::Document doc;
  doc.Parse(json.c_str());
  if (doc.HasParseError()) throw std::runtime_error("not JSON: " + json);
  return doc;
}

inline int64_t json_int(const std::string& json, const char* pointer) {
  auto doc = parse(json);
  const rapidjson::Value* value = rapidjson::Pointer(pointer).Get(doc);
  if (!value || !value->IsInt64()) throw std::runtime_error(std::string("no integer at ") + pointer + " in " + json);
  return value->GetInt64();
}

inline std::string json_string(const std::string& json, const char* pointer) {
  auto doc = parse(json);
  const rapidjson::Value* value = rapidjson::Pointer(pointer).Get(doc);
  if (!value || !value->IsString()) throw std::runtime_error(std::string("no string at ") + pointer + " in " + json);
  return value->GetString();
}

inline bool json_bool(const std::string& json, const char* pointer) {
  auto doc = parse(json);
  const rapidjson::Value* value = rapidjson::Pointer(pointer).Get(doc);
  if (!value || !value->IsBool()) throw std::runtime_error(std::string("no boolean at ") + pointer + " in " + json);
  return value->GetBool();
}

// True if the shared object at `path` is currently mapped in this process
// (dlopen with RTLD_NOLOAD loads nothing; the extra reference is dropped).
inline bool is_mapped(const std::string& path) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (!handle) return false;
  ::dlclose(handle);
  return true;
}

}  // namespace test_support
