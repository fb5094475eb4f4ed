// The one host-side adapter from wep::HostServices (host_services.hpp) to
// the C table a plugin receives (wep_host_api). Every host uses it: the host
// library's PluginManager for effect plugins, and a plugin that hosts a
// transport (the analytics flusher) for its transport.
//
// Ownership: a HostApiTable owns the strings the table points to and must
// outlive the plugin instance it was given to (until destroy() returned).
// It cannot be copied or moved: the table's ctx points at it.
// Thread safety: the table's functions may be called from any thread; they
// only read immutable state and call the (thread-safe) services.
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <wep/host_services.hpp>
#include <wep/plugin.hpp>

namespace wep {

class HostApiTable {
 public:
  // Called when the plugin calls subscribe(event_kinds); its answer goes
  // back to the plugin. Null: the host has no bus (WEP_ERR_UNSUPPORTED).
  using SubscribeFunction = std::function<wep_status(uint32_t event_kinds)>;

  // `plugin_name` prefixes nothing itself; it is what services.log receives
  // as the plugin's name. `data_dir` should exist.
  HostApiTable(std::string plugin_name, std::string config_json, std::string data_dir, HostServices services,
               SubscribeFunction subscribe = {})
      : name_(std::move(plugin_name)),
        config_json_(std::move(config_json)),
        data_dir_(std::move(data_dir)),
        services_(std::move(services)),
        subscribe_(std::move(subscribe)) {
    api_.struct_size = sizeof(wep_host_api);
    api_.ctx = this;
    api_.plugin_config_json = str(config_json_);
    api_.data_dir = str(data_dir_);  // std::string keeps a NUL after its data
    api_.log = &HostApiTable::log;
    api_.get_setting = &HostApiTable::get_setting;
    api_.get_pseudonymous_id = &HostApiTable::get_pseudonymous_id;
    api_.subscribe = &HostApiTable::subscribe;
    api_.read_event_log = &HostApiTable::read_event_log;
    api_.last_mutation_sequence = &HostApiTable::last_mutation_sequence;
  }
  HostApiTable(const HostApiTable&) = delete;
  HostApiTable& operator=(const HostApiTable&) = delete;

  const wep_host_api* get() const { return &api_; }
  const std::string& plugin_name() const { return name_; }
  const std::string& config_json() const { return config_json_; }
  const std::string& data_dir() const { return data_dir_; }

 private:
  static const HostApiTable& self(void* ctx) { return *static_cast<const HostApiTable*>(ctx); }

  static void log(void* ctx, int32_t level, const char* message, size_t size) noexcept {
    try {
      const HostApiTable& table = self(ctx);
      if (table.services_.log) table.services_.log(level, table.name_, std::string_view(message ? message : "", size));
    } catch (...) {
      // A log line is never worth an exception across the boundary.
    }
  }

  static wep_status get_setting(void* ctx, wep_str key, wep_sink* value_json) noexcept {
    try {
      const HostApiTable& table = self(ctx);
      if (!table.services_.settings) return WEP_ERR_NOT_FOUND;
      auto value = table.services_.settings->setting_json(view(key));
      if (!value) return WEP_ERR_NOT_FOUND;
      write(value_json, *value);
      return WEP_OK;
    } catch (...) {
      return WEP_ERR_FAILED;
    }
  }

  static wep_status get_pseudonymous_id(void* ctx, wep_sink* out) noexcept {
    try {
      const HostApiTable& table = self(ctx);
      if (!table.services_.identity) return WEP_ERR_UNSUPPORTED;
      auto id = table.services_.identity->pseudonymous_id();
      if (!id) return WEP_ERR_UNSUPPORTED;
      write(out, *id);
      return WEP_OK;
    } catch (...) {
      return WEP_ERR_FAILED;
    }
  }

  static wep_status subscribe(void* ctx, uint32_t event_kinds) noexcept {
    try {
      const HostApiTable& table = self(ctx);
      if (!table.subscribe_) return WEP_ERR_UNSUPPORTED;
      return table.subscribe_(event_kinds);
    } catch (...) {
      return WEP_ERR_FAILED;
    }
  }

  static wep_status read_event_log(void* ctx, int64_t after_sequence, const wep_log_visitor* visitor) noexcept {
    try {
      const HostApiTable& table = self(ctx);
      if (!table.services_.event_log) return WEP_ERR_UNSUPPORTED;
      if (!visitor || !visitor->visit) return WEP_ERR_INVALID_ARGUMENT;
      table.services_.event_log->read_after(after_sequence, [visitor](const LoggedEvent& logged) {
        wep_event event{};
        event.struct_size = sizeof(wep_event);
        event.kind = logged.kind;
        event.mutation.sequence = logged.sequence;
        event.mutation.type = str(logged.type);
        event.mutation.payload_json = str(logged.payload_json);
        event.mutation.committed_at_ms = logged.committed_at_ms;
        event.setting.key = str(logged.setting_key);
        event.setting.value_json = str(logged.setting_value_json);
        return visitor->visit(visitor->ctx, &event) != 0;
      });
      return WEP_OK;
    } catch (...) {
      return WEP_ERR_FAILED;
    }
  }

  static wep_status last_mutation_sequence(void* ctx, int64_t* out) noexcept {
    try {
      const HostApiTable& table = self(ctx);
      if (!table.services_.event_log) return WEP_ERR_UNSUPPORTED;
      if (!out) return WEP_ERR_INVALID_ARGUMENT;
      *out = table.services_.event_log->last_sequence();
      return WEP_OK;
    } catch (...) {
      return WEP_ERR_FAILED;
    }
  }

  const std::string name_;
  const std::string config_json_;
  const std::string data_dir_;
  const HostServices services_;
  const SubscribeFunction subscribe_;
  wep_host_api api_{};
};

}  // namespace wep
