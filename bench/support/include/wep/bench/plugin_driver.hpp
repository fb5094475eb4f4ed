// PluginDriver: loads an effect plugin file and calls it directly, the way a
// host does through the public wep::plugin_host classes (PluginLibrary,
// EffectPluginHandle, HostApiTable), without a bus in between, so a
// benchmark times the plugin's own on_event. The host side offers the
// config, a data dir, a fixed pseudonymous id and no persisted settings;
// warnings and errors the plugin logs go to stderr.
//
// Thread safety: one driving thread; the host side is thread-safe as the
// plugin API requires.
#pragma once

#include <rapidjson/document.h>
#include <rapidjson/pointer.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <wep/host_api_table.hpp>
#include <wep/plugin_host.hpp>

namespace wep::bench {

class PluginDriver final : public wep::SettingsSource, public wep::IdentitySource {
 public:
  PluginDriver(const std::string& plugin_path, std::string config_json, const std::filesystem::path& data_dir,
               std::string pseudonymous_id)
      : pseudonymous_id_(std::move(pseudonymous_id)) {
    std::filesystem::create_directories(data_dir);
    std::string error;
    library_ = wep::PluginLibrary::open(plugin_path, error);
    if (!library_) throw std::runtime_error(error);
    wep::HostServices services;
    services.settings = this;
    services.identity = this;
    services.log = [](int32_t level, std::string_view name, std::string_view message) {
      if (level < WEP_LOG_WARN) return;  // the figures stay readable; warnings and errors still show
      std::fprintf(stderr, "%.*s: %.*s\n", static_cast<int>(name.size()), name.data(), static_cast<int>(message.size()),
                   message.data());
    };
    api_ = std::make_unique<wep::HostApiTable>(library_->name(), std::move(config_json), data_dir.string(), services,
                                               [](uint32_t) { return WEP_OK; });
    handle_ = std::make_unique<wep::EffectPluginHandle>(library_);
    if (!handle_->create(api_->get(), error)) throw std::runtime_error("create: " + error);
    if (!handle_->start(error)) {
      handle_->stop(1000);
      handle_.reset();
      throw std::runtime_error("start: " + error);
    }
  }
  ~PluginDriver() override { stop(); }
  PluginDriver(const PluginDriver&) = delete;
  PluginDriver& operator=(const PluginDriver&) = delete;

  std::optional<std::string> setting_json(std::string_view) const override { return std::nullopt; }
  std::optional<std::string> pseudonymous_id() const override { return pseudonymous_id_; }

  void mutation(std::string_view type, std::string_view payload, int64_t sequence, int64_t committed_at_ms) {
    wep_event event{};
    event.struct_size = sizeof(event);
    event.kind = WEP_EVENT_MUTATION_COMMITTED;
    event.mutation.sequence = sequence;
    event.mutation.type = wep::str(type);
    event.mutation.payload_json = wep::str(payload);
    event.mutation.committed_at_ms = committed_at_ms;
    handle_->on_event(event);
  }
  void connectivity(bool online) {
    wep_event event{};
    event.struct_size = sizeof(event);
    event.kind = WEP_EVENT_CONNECTIVITY_CHANGED;
    event.connectivity.online = online ? 1 : 0;
    handle_->on_event(event);
  }
  // The plugin's pending count (a barrier: waits for its writer).
  int64_t pending() {
    int64_t n = -1;
    if (handle_->pending_count(n) != WEP_OK) throw std::runtime_error("pending_count failed");
    return n;
  }
  // A number in the plugin's stats by JSON pointer (e.g. "/delivered"), or -1.
  int64_t stat(const char* pointer) {
    rapidjson::Document doc;
    doc.Parse(handle_->stats_json().c_str());
    const rapidjson::Value* value = doc.HasParseError() ? nullptr : rapidjson::Pointer(pointer).Get(doc);
    return value && value->IsInt64() ? value->GetInt64() : -1;
  }
  // Stops and destroys the instance, then unloads the library.
  wep_status stop(uint32_t timeout_ms = 5000) {
    if (!handle_) return WEP_OK;
    const wep_status status = handle_->stop(timeout_ms);
    handle_.reset();
    library_.reset();
    return status;
  }

 private:
  const std::string pseudonymous_id_;
  std::shared_ptr<const wep::PluginLibrary> library_;
  std::unique_ptr<wep::HostApiTable> api_;  // outlives the instance
  std::unique_ptr<wep::EffectPluginHandle> handle_;
};

// Milliseconds since the Unix epoch (the committed_at of a mutation).
inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace wep::bench
