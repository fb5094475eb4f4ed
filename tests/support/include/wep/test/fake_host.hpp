// FakeHost: the wep_host_api double for tests that call a plugin directly
// (without the host stub): a fixed config and data dir, settings the test
// sets, a pseudonymous id, subscriptions recorded, and every log line kept
// (it can be waited for). Built on wep::HostApiTable, the adapter the real
// hosts use, so only the services behind it are fake.
//
// Offer::kLogOnly gives what a flusher gives a transport: config, data dir
// and log, no settings, identity or bus.
//
// Thread safety: every member may be called from any thread, as the plugin
// API requires of a host.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>
#include <wep/host_api_table.hpp>

namespace wep::test {

class FakeHost : public wep::SettingsSource, public wep::IdentitySource {
 public:
  enum class Offer { kEverything, kLogOnly };

  // `event_log`: the host's event log to offer (borrowed), or none.
  FakeHost(std::string plugin_name, std::string config_json, const std::filesystem::path& data_dir,
           std::string pseudonymous_id = "test-user", Offer offer = Offer::kEverything,
           const wep::EventLogSource* event_log = nullptr)
      : pseudonymous_id_(std::move(pseudonymous_id)) {
    if (!data_dir.empty()) std::filesystem::create_directories(data_dir);
    wep::HostServices services;
    if (offer == Offer::kEverything) {
      services.settings = this;
      services.identity = this;
      services.event_log = event_log;
    }
    services.log = [this](int32_t level, std::string_view, std::string_view message) {
      on_log(level, std::string(message));
    };
    wep::HostApiTable::SubscribeFunction subscribe;
    if (offer == Offer::kEverything) {
      subscribe = [this](uint32_t kinds) {
        if (before_subscribe) before_subscribe();
        std::lock_guard lock(mutex_);
        subscribed_ = kinds;
        return WEP_OK;
      };
    }
    api_ = std::make_unique<wep::HostApiTable>(std::move(plugin_name), std::move(config_json), data_dir.string(),
                                               std::move(services), std::move(subscribe));
  }
  ~FakeHost() override = default;
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  const wep_host_api* api() const { return api_->get(); }

  // Called on the subscribing thread before a subscription takes effect:
  // what it does (e.g. a setting change) is what a host published before the
  // plugin was subscribed. Set while no plugin starts.
  std::function<void()> before_subscribe;

  std::optional<std::string> setting_json(std::string_view key) const override {
    std::lock_guard lock(mutex_);
    auto it = settings_.find(std::string(key));
    if (it == settings_.end()) return std::nullopt;
    return it->second;
  }
  std::optional<std::string> pseudonymous_id() const override { return pseudonymous_id_; }

  void set_setting(const std::string& key, const std::string& value_json) {
    std::lock_guard lock(mutex_);
    settings_[key] = value_json;
  }
  uint32_t subscribed() const {
    std::lock_guard lock(mutex_);
    return subscribed_;
  }
  // Every line logged so far, as "<level> <message>".
  std::vector<std::string> log_lines() const {
    std::lock_guard lock(mutex_);
    return log_;
  }
  // Waits until a log line contains `needle`; false at the timeout.
  bool wait_for_log(const std::string& needle, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return logged_.wait_for(lock, timeout, [&] {
      for (const auto& line : log_) {
        if (line.find(needle) != std::string::npos) return true;
      }
      return false;
    });
  }

 private:
  void on_log(int32_t level, std::string line) {
    {
      std::lock_guard lock(mutex_);
      log_.push_back(std::to_string(level) + " " + std::move(line));
    }
    logged_.notify_all();
  }

  const std::string pseudonymous_id_;
  mutable std::mutex mutex_;
  std::condition_variable logged_;
  std::map<std::string, std::string> settings_;
  std::vector<std::string> log_;
  uint32_t subscribed_ = 0;
  std::unique_ptr<wep::HostApiTable> api_;  // last: its functions use the members above
};

}  // namespace wep::test
