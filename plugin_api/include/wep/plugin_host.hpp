// The host's side of the contract in plugin_api.h: load a plugin file with
// Boost.DLL, check its API version, and own an instance so that the instance
// is always destroyed before its library is unmapped.
//
// Thread safety: a PluginLibrary is immutable after open() and may be shared.
// Instance handles are not synchronised; their owner serialises lifecycle
// calls (start/stop/destroy). Query calls follow the vtable's contract.
#pragma once

#include <boost/dll/shared_library.hpp>
#include <memory>
#include <optional>
#include <string>
#include <wep/plugin.hpp>

namespace wep {

// Why a host providing plugin API host_major.host_minor refuses `descriptor`
// (from the file at `path`), or nothing when it accepts it: the majors must
// be equal and the plugin's minor not newer than the host's.
inline std::optional<std::string> api_version_refusal(const wep_plugin_descriptor& descriptor, const std::string& path,
                                                      uint16_t host_major = WEP_API_VERSION_MAJOR,
                                                      uint16_t host_minor = WEP_API_VERSION_MINOR) {
  const std::string theirs = std::to_string(descriptor.api_major) + "." + std::to_string(descriptor.api_minor);
  const std::string ours = std::to_string(host_major) + "." + std::to_string(host_minor);
  if (descriptor.api_major != host_major) {
    return "plugin '" + path + "' was built for plugin API " + theirs + " but this host provides " + ours +
           ": the major versions differ";
  }
  if (descriptor.api_minor > host_minor) {
    return "plugin '" + path + "' was built for plugin API " + theirs + " but this host provides " + ours +
           ": the plugin needs a newer host";
  }
  return std::nullopt;
}

// A loaded plugin file whose descriptor passed the version check.
class PluginLibrary {
 public:
  // Loads `path` (RTLD_NOW | RTLD_LOCAL). On failure returns null and sets
  // `error` to a message naming the file and, for a version mismatch, both
  // versions.
  static std::shared_ptr<const PluginLibrary> open(const std::string& path, std::string& error) {
    auto self = std::shared_ptr<PluginLibrary>(new PluginLibrary);
    self->path_ = path;
    try {
      self->library_.load(path, boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local);
    } catch (const std::exception& e) {
      error = "cannot load plugin '" + path + "': " + e.what();
      return nullptr;
    }
    if (!self->library_.has(WEP_ENTRY_POINT_NAME)) {
      error = "'" + path + "' is not a plugin: it exports no '" WEP_ENTRY_POINT_NAME "' entry point";
      return nullptr;
    }
    auto entry = self->library_.get<const wep_plugin_descriptor*()>(WEP_ENTRY_POINT_NAME);
    const wep_plugin_descriptor* d = entry();
    if (!d) {
      error = "plugin '" + path + "': its entry point returned no descriptor";
      return nullptr;
    }
    if (auto refusal = api_version_refusal(*d, path)) {
      error = *refusal;
      return nullptr;
    }
    if (d->struct_size < sizeof(wep_plugin_descriptor) || (d->effect == nullptr) == (d->transport == nullptr)) {
      error = "plugin '" + path + "': malformed descriptor (it must name exactly one of effect or transport)";
      return nullptr;
    }
    self->descriptor_ = d;
    return self;
  }

  const wep_plugin_descriptor& descriptor() const { return *descriptor_; }
  const std::string& path() const { return path_; }
  std::string name() const { return descriptor_->name ? descriptor_->name : "?"; }

 private:
  PluginLibrary() = default;
  boost::dll::shared_library library_;  // unloaded when the last owner goes
  const wep_plugin_descriptor* descriptor_ = nullptr;
  std::string path_;
};

namespace detail {

// Owns one instance of a plugin; destroys it before releasing the library.
template <class VTable>
class InstanceHandle {
 public:
  InstanceHandle(std::shared_ptr<const PluginLibrary> library, const VTable* vtable)
      : library_(std::move(library)), vtable_(vtable) {}
  InstanceHandle(const InstanceHandle&) = delete;
  InstanceHandle& operator=(const InstanceHandle&) = delete;
  ~InstanceHandle() { reset(); }

  // Creates the instance. `host` must outlive it. False and `error` on failure.
  bool create(const wep_host_api* host, std::string& error) {
    wep_sink sink = string_sink(error);
    self_ = vtable_->create(host, &sink);
    if (!self_ && error.empty()) error = "plugin '" + library_->path() + "': create failed";
    return self_ != nullptr;
  }

  bool start(std::string& error) {
    wep_sink sink = string_sink(error);
    return vtable_->start(self_, &sink) == WEP_OK;
  }

  wep_status stop(uint32_t timeout_ms) { return self_ ? vtable_->stop(self_, timeout_ms) : WEP_OK; }

  // Destroys the instance (the library stays loaded while this handle lives).
  void reset() {
    if (self_) vtable_->destroy(self_);
    self_ = nullptr;
  }

  const PluginLibrary& library() const { return *library_; }
  wep_plugin* get() const { return self_; }
  const VTable& vtable() const { return *vtable_; }

 private:
  std::shared_ptr<const PluginLibrary> library_;  // declared first: released last
  const VTable* vtable_;
  wep_plugin* self_ = nullptr;
};

}  // namespace detail

class EffectPluginHandle : public detail::InstanceHandle<wep_effect_plugin_vtable> {
 public:
  explicit EffectPluginHandle(std::shared_ptr<const PluginLibrary> library)
      : InstanceHandle(library, library->descriptor().effect) {}

  void on_event(const wep_event& event) { vtable().on_event(get(), &event); }

  wep_status pending_count(int64_t& out) { return vtable().pending_count(get(), &out); }

  // The plugin's stats object, or {"error": ...} when it has none.
  std::string stats_json() {
    std::string out;
    wep_sink sink = string_sink(out);
    if (vtable().stats_json(get(), &sink) != WEP_OK) return "{\"error\":\"stats unavailable\"}";
    return out;
  }
};

class TransportHandle : public detail::InstanceHandle<wep_transport_vtable> {
 public:
  explicit TransportHandle(std::shared_ptr<const PluginLibrary> library)
      : InstanceHandle(library, library->descriptor().transport) {}

  void send(const wep_batch& batch, wep_verdict& verdict) { vtable().send(get(), &batch, &verdict); }
  void cancel() { vtable().cancel(get()); }

  // API 1.2: how long rows may be sent again and still be stored once
  // (wep_transport_vtable.resend_window_ms); nothing when the transport is
  // older, or the window is unbounded or unknown.
  std::optional<int64_t> resend_window_ms() {
    int64_t out = 0;
    if (!WEP_HAS_FIELD(wep_transport_vtable, &vtable(), resend_window_ms) || !vtable().resend_window_ms ||
        vtable().resend_window_ms(get(), &out) != WEP_OK)
      return std::nullopt;
    return out;
  }
};

}  // namespace wep
