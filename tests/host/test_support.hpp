// Shared helpers for the host suites: temporary folders, JSON lookups, and
// a plugin-is-mapped probe. Nothing here needs the harness (host_stub).
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <wep/test/mapped_library.hpp>
#include <wep/test/temp_dir.hpp>

namespace wep::test {

using wep::test::is_mapped;
using wep::test::TempDir;

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

}  // namespace wep::test
