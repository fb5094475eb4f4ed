// The plugin author's side of the contract in plugin_api.h: implement
// wep::EffectPlugin or wep::TransportPlugin in C++ and export it with one
// macro. The adapters below catch every exception at the boundary and turn
// it into a wep_status plus error text; no C++ object crosses it.
#pragma once

#include <wep/plugin_api.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace wep {

inline std::string_view view(wep_str s) { return {s.data ? s.data : "", s.size}; }
inline wep_str str(std::string_view s) { return {s.data(), s.size()}; }

// A wep_sink that appends to a std::string owned by the caller.
inline wep_sink string_sink(std::string& out) {
  return {&out, [](void* ctx, const char* data, size_t size) { static_cast<std::string*>(ctx)->append(data, size); }};
}

inline void write(wep_sink* sink, std::string_view text) {
  if (sink && sink->write) sink->write(sink->ctx, text.data(), text.size());
}

// Thrown inside a plugin to refuse something with a status; caught by the
// adapters. Any other std::exception maps to WEP_ERR_FAILED.
class Error : public std::exception {
 public:
  Error(wep_status status, std::string message) : status_(status), message_(std::move(message)) {}
  wep_status status() const noexcept { return status_; }
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  wep_status status_;
  std::string message_;
};

// Typed access to the host services. A cheap value; valid while the plugin
// instance lives. Thread-safe like the functions it wraps.
class Host {
 public:
  explicit Host(const wep_host_api* api) : api_(api) {}

  std::string_view config_json() const { return view(api_->plugin_config_json); }
  std::string_view data_dir() const { return view(api_->data_dir); }

  void log(int32_t level, std::string_view message) const noexcept {
    if (api_->log) api_->log(api_->ctx, level, message.data(), message.size());
  }

  // The setting's JSON value, or nothing if the host does not know the key.
  std::optional<std::string> setting_json(std::string_view key) const {
    std::string out;
    wep_sink sink = string_sink(out);
    if (!api_->get_setting || api_->get_setting(api_->ctx, str(key), &sink) != WEP_OK) return std::nullopt;
    return out;
  }

  std::optional<std::string> pseudonymous_id() const {
    std::string out;
    wep_sink sink = string_sink(out);
    if (!api_->get_pseudonymous_id || api_->get_pseudonymous_id(api_->ctx, &sink) != WEP_OK) return std::nullopt;
    return out;
  }

  wep_status subscribe(uint32_t event_kinds) const {
    return api_->subscribe ? api_->subscribe(api_->ctx, event_kinds) : WEP_ERR_UNSUPPORTED;
  }

  // The host's event log (API 1.1). nullopt when the host is older or
  // keeps no log.
  std::optional<int64_t> last_mutation_sequence() const {
    int64_t sequence = 0;
    if (!WEP_HAS_FIELD(wep_host_api, api_, last_mutation_sequence) || !api_->last_mutation_sequence ||
        api_->last_mutation_sequence(api_->ctx, &sequence) != WEP_OK)
      return std::nullopt;
    return sequence;
  }

  // Calls visit(const wep_event&) for every event of the host's log after
  // `after_sequence` (see wep_host_api.read_event_log), in order, until it
  // returns false. False when the host is older or keeps no log. An
  // exception thrown by visit stops the read and is rethrown here.
  template <class Visit>
  bool read_event_log(int64_t after_sequence, Visit&& visit) const {
    if (!WEP_HAS_FIELD(wep_host_api, api_, read_event_log) || !api_->read_event_log) return false;
    struct Context {
      Visit& visit;
      std::exception_ptr error;
    } context{visit, nullptr};
    wep_log_visitor visitor{&context, [](void* ctx, const wep_event* event) -> int32_t {
                              auto& c = *static_cast<Context*>(ctx);
                              try {
                                return c.visit(*event) ? 1 : 0;
                              } catch (...) {
                                c.error = std::current_exception();
                                return 0;
                              }
                            }};
    const wep_status status = api_->read_event_log(api_->ctx, after_sequence, &visitor);
    if (context.error) std::rethrow_exception(context.error);
    return status == WEP_OK;
  }

 private:
  const wep_host_api* api_;
};

// Base of an effect plugin's implementation. Contracts as in
// wep_effect_plugin_vtable; methods may throw (the adapter catches).
class EffectPlugin {
 public:
  virtual ~EffectPlugin() = default;
  virtual void start() = 0;
  virtual void on_event(const wep_event& event) = 0;
  // Nothing: the plugin keeps no queue.
  virtual std::optional<int64_t> pending_count() { return std::nullopt; }
  virtual std::string stats_json() { return "{}"; }
  // Returns false if work had to be abandoned at the deadline.
  virtual bool stop(uint32_t timeout_ms) = 0;
  // A plugin-defined command (API 1.2): returns its answer, a JSON object.
  // Throw wep::Error(WEP_ERR_UNSUPPORTED, ...) for an unknown command (the
  // default), WEP_ERR_INVALID_ARGUMENT for a bad argument.
  virtual std::string control(std::string_view command, std::string_view argument_json) {
    (void)argument_json;
    throw Error(WEP_ERR_UNSUPPORTED, "unknown command '" + std::string(command) + "'");
  }
};

// What a transport reports about one batch; wraps wep_verdict.
class Verdict {
 public:
  Verdict(wep_verdict* raw, size_t count) : raw_(raw), count_(count) {}
  void delivered() { raw_->kind = WEP_VERDICT_DELIVERED; }
  void retry_later(std::string_view why, int64_t retry_after_ms = -1) {
    raw_->kind = WEP_VERDICT_RETRY_LATER;
    raw_->retry_after_ms = retry_after_ms;
    write(&raw_->reason, why);
  }
  // Flags every row: the caller splits the batch to find the bad ones.
  void rejected_all(std::string_view why) {
    raw_->kind = WEP_VERDICT_REJECTED;
    for (size_t i = 0; i < count_; ++i) raw_->rejected[i] = 1;
    write(&raw_->reason, why);
  }
  void rejected_row(size_t index) {
    raw_->kind = WEP_VERDICT_REJECTED;
    if (index < count_) raw_->rejected[index] = 1;
  }
  void too_large(std::string_view why) {
    raw_->kind = WEP_VERDICT_TOO_LARGE;
    write(&raw_->reason, why);
  }
  void failed(std::string_view why) {
    raw_->kind = WEP_VERDICT_FAILED;
    write(&raw_->reason, why);
  }
  void set_http_status(int32_t status) { raw_->http_status = status; }
  void reason(std::string_view text) { write(&raw_->reason, text); }

  // API 1.2: true if the caller takes a WEP_VERDICT_PER_ROW answer.
  bool per_row_supported() const { return WEP_HAS_FIELD(wep_verdict, raw_, per_row_ok) && raw_->per_row_ok != 0; }

  // Settles the batch row by row: outcomes[i] is the WEP_ROW_* of row i
  // (`count` entries). Every row delivered: DELIVERED. Otherwise PER_ROW
  // when the caller takes it; to an older caller, REJECTED flagging the
  // refused rows when there are any (it sends the others again, which stores
  // them once), else RETRY_LATER for the whole batch. `why` explains the
  // rows not delivered.
  void per_row(const uint8_t* outcomes, std::string_view why, int64_t retry_after_ms = -1) {
    bool all_delivered = true, any_rejected = false;
    for (size_t i = 0; i < count_; ++i) {
      all_delivered = all_delivered && outcomes[i] == WEP_ROW_DELIVERED;
      any_rejected = any_rejected || outcomes[i] == WEP_ROW_REJECTED;
    }
    if (all_delivered) {
      delivered();
    } else if (per_row_supported()) {
      raw_->kind = WEP_VERDICT_PER_ROW;
      raw_->retry_after_ms = retry_after_ms;
      for (size_t i = 0; i < count_; ++i) raw_->rejected[i] = outcomes[i];
      write(&raw_->reason, why);
    } else if (any_rejected) {
      raw_->kind = WEP_VERDICT_REJECTED;
      for (size_t i = 0; i < count_; ++i) raw_->rejected[i] = outcomes[i] == WEP_ROW_REJECTED ? 1 : 0;
      write(&raw_->reason, why);
    } else {
      retry_later(why, retry_after_ms);
    }
  }

 private:
  wep_verdict* raw_;
  size_t count_;
};

// Base of a transport's implementation. Contracts as in wep_transport_vtable.
class TransportPlugin {
 public:
  virtual ~TransportPlugin() = default;
  virtual void start() = 0;
  virtual void send(const wep_batch& batch, Verdict& verdict) = 0;
  virtual void cancel() noexcept {}
  virtual bool stop(uint32_t timeout_ms) = 0;
  // API 1.2 (wep_transport_vtable.resend_window_ms): nothing when unbounded
  // or unknown. Thread-safe, never blocks.
  virtual std::optional<int64_t> resend_window_ms() const noexcept { return std::nullopt; }
};

namespace detail {

inline wep_status status_of_current_exception(wep_sink* error) noexcept {
  try {
    throw;
  } catch (const Error& e) {
    write(error, e.what());
    return e.status();
  } catch (const std::exception& e) {
    write(error, e.what());
  } catch (...) {
    write(error, "unknown exception");
  }
  return WEP_ERR_FAILED;
}

template <class Base>
struct Instance {
  std::unique_ptr<Base> impl;
};

template <class Base>
Base& impl_of(wep_plugin* self) {
  return *reinterpret_cast<Instance<Base>*>(self)->impl;
}

template <class Base, class Factory>
wep_plugin* create(const wep_host_api* host, wep_sink* error, Factory factory) noexcept {
  try {
    auto* instance = new Instance<Base>{factory(Host(host))};
    return reinterpret_cast<wep_plugin*>(instance);
  } catch (...) {
    status_of_current_exception(error);
    return nullptr;
  }
}

template <class Base>
wep_status start(wep_plugin* self, wep_sink* error) noexcept {
  try {
    impl_of<Base>(self).start();
    return WEP_OK;
  } catch (...) {
    return status_of_current_exception(error);
  }
}

template <class Base>
wep_status stop(wep_plugin* self, uint32_t timeout_ms) noexcept {
  try {
    return impl_of<Base>(self).stop(timeout_ms) ? WEP_OK : WEP_ERR_TIMEOUT;
  } catch (...) {
    return status_of_current_exception(nullptr);
  }
}

template <class Base>
void destroy(wep_plugin* self) noexcept {
  delete reinterpret_cast<Instance<Base>*>(self);  // destructors must not throw
}

inline void on_event(wep_plugin* self, const wep_event* event) noexcept {
  try {
    impl_of<EffectPlugin>(self).on_event(*event);
  } catch (...) {
    // Swallowed by contract: a bad event never reaches the host as an error.
    // Plugins count their own drops.
  }
}

inline wep_status pending_count(wep_plugin* self, int64_t* out) noexcept {
  try {
    auto n = impl_of<EffectPlugin>(self).pending_count();
    if (!n) return WEP_ERR_UNSUPPORTED;
    *out = *n;
    return WEP_OK;
  } catch (...) {
    return status_of_current_exception(nullptr);
  }
}

inline wep_status stats_json(wep_plugin* self, wep_sink* out) noexcept {
  try {
    write(out, impl_of<EffectPlugin>(self).stats_json());
    return WEP_OK;
  } catch (...) {
    return status_of_current_exception(nullptr);
  }
}

inline wep_status control(wep_plugin* self, wep_str command, wep_str argument_json, wep_sink* answer) noexcept {
  try {
    write(answer, impl_of<EffectPlugin>(self).control(view(command), view(argument_json)));
    return WEP_OK;
  } catch (...) {
    return status_of_current_exception(answer);
  }
}

inline void send(wep_plugin* self, const wep_batch* batch, wep_verdict* verdict) noexcept {
  try {
    Verdict v(verdict, batch->count);
    impl_of<TransportPlugin>(self).send(*batch, v);
  } catch (...) {
    verdict->kind = WEP_VERDICT_RETRY_LATER;
    status_of_current_exception(&verdict->reason);
  }
}

inline void cancel(wep_plugin* self) noexcept { impl_of<TransportPlugin>(self).cancel(); }

inline wep_status resend_window_ms(wep_plugin* self, int64_t* out) noexcept {
  const std::optional<int64_t> window = impl_of<TransportPlugin>(self).resend_window_ms();
  if (!window) return WEP_ERR_UNSUPPORTED;
  *out = *window;
  return WEP_OK;
}

}  // namespace detail
}  // namespace wep

// The API minor version a plugin declares: by default the one of these
// headers. A plugin that uses nothing newer may define it lower (before
// including this header) to load in older hosts of the same major version.
#ifndef WEP_PLUGIN_API_MINOR
#define WEP_PLUGIN_API_MINOR WEP_API_VERSION_MINOR
#endif

#if defined(__GNUC__)
#define WEP_EXPORT extern "C" __attribute__((visibility("default")))
#else
#define WEP_EXPORT extern "C"
#endif

// The body shared by both entry points: a static descriptor naming the
// plugin, the API version it was built against and its one vtable.
#define WEP_DETAIL_RETURN_DESCRIPTOR(plugin_name, plugin_version, effect_vtable, transport_vtable)             \
  static const wep_plugin_descriptor descriptor = {                                                            \
      WEP_API_VERSION_MAJOR, WEP_PLUGIN_API_MINOR, sizeof(wep_plugin_descriptor), plugin_name, plugin_version, \
      effect_vtable,         transport_vtable};                                                                \
  return &descriptor

// Defines the plugin's one exported entry point for an effect plugin.
// `factory` is an expression callable as factory(wep::Host) returning
// std::unique_ptr<wep::EffectPlugin>.
#define WEP_EFFECT_PLUGIN(plugin_name, plugin_version, factory)                    \
  WEP_EXPORT const wep_plugin_descriptor* wep_plugin_entry(void) {                 \
    static const wep_effect_plugin_vtable vtable = {                               \
        sizeof(wep_effect_plugin_vtable),                                          \
        [](const wep_host_api* host, wep_sink* error) noexcept {                   \
          return ::wep::detail::create<::wep::EffectPlugin>(host, error, factory); \
        },                                                                         \
        ::wep::detail::start<::wep::EffectPlugin>,                                 \
        ::wep::detail::on_event,                                                   \
        ::wep::detail::pending_count,                                              \
        ::wep::detail::stats_json,                                                 \
        ::wep::detail::stop<::wep::EffectPlugin>,                                  \
        ::wep::detail::destroy<::wep::EffectPlugin>,                               \
        ::wep::detail::control,                                                    \
    };                                                                             \
    WEP_DETAIL_RETURN_DESCRIPTOR(plugin_name, plugin_version, &vtable, nullptr);   \
  }

// The size of the transport vtable of the API minor a plugin declares: a
// plugin declaring 1.1 exposes the 1.1 table, as if built with 1.1 headers.
#if WEP_PLUGIN_API_MINOR >= 2
#define WEP_TRANSPORT_VTABLE_SIZE sizeof(wep_transport_vtable)
#else
#define WEP_TRANSPORT_VTABLE_SIZE offsetof(wep_transport_vtable, resend_window_ms)
#endif

// The same for a transport; factory(wep::Host) returns
// std::unique_ptr<wep::TransportPlugin>.
#define WEP_TRANSPORT_PLUGIN(plugin_name, plugin_version, factory)                    \
  WEP_EXPORT const wep_plugin_descriptor* wep_plugin_entry(void) {                    \
    static const wep_transport_vtable vtable = {                                      \
        WEP_TRANSPORT_VTABLE_SIZE,                                                    \
        [](const wep_host_api* host, wep_sink* error) noexcept {                      \
          return ::wep::detail::create<::wep::TransportPlugin>(host, error, factory); \
        },                                                                            \
        ::wep::detail::start<::wep::TransportPlugin>,                                 \
        ::wep::detail::send,                                                          \
        ::wep::detail::cancel,                                                        \
        ::wep::detail::stop<::wep::TransportPlugin>,                                  \
        ::wep::detail::destroy<::wep::TransportPlugin>,                               \
        ::wep::detail::resend_window_ms,                                              \
    };                                                                                \
    WEP_DETAIL_RETURN_DESCRIPTOR(plugin_name, plugin_version, nullptr, &vtable);      \
  }
