// test_effect_plugin: a configurable effect plugin for host tests (any
// helper may reuse it). Built with wep_add_plugin -> build/plugins/
// libtest_effect_plugin.so; its descriptor name is "test_effect".
//
// Config (a JSON object; every key optional, unknown keys refused at start()
// with the key named):
//   "throw_on_event": bool     on_event throws after counting (the adapter
//                              swallows it; counted in stats "thrown")
//   "sleep_on_event_ms": int   on_event sleeps that long: a slow subscriber
//   "start_thread": bool       start() starts a worker thread that "delivers"
//                              pending events while online; stop() joins it;
//                              its last act is writing <data_dir>/thread_exited
//   "fail_start": bool         start() fails with "test plugin: fail_start is set"
//   "fail_after_subscribe": bool  start() subscribes, then fails
//   "pending": bool            answers pending_count (else WEP_ERR_UNSUPPORTED)
//   "subscribe": int           the event mask to subscribe to (default 7: all)
//   "block_on_fd": int         on_event of a mutation first reads one byte from
//                              this file descriptor (a pipe the test holds):
//                              a gate the test opens byte by byte
//   "read_log_after": int      start() reads the host's event log (API 1.1)
//                              after that sequence: stats "log_read",
//                              "log_last_sequence" (-1: the host has no log),
//                              "log_trace" (the entries in order)
//
// Built twice: test_effect_plugin (declaring this API's minor) and
// test_effect_plugin_v1_0 (WEP_PLUGIN_API_MINOR=0, named "test_effect_v1_0"):
// a plugin built for API 1.0 that must keep working in newer hosts.
//
// Pending model: every mutation received is "stored" at once and pending
// until "delivered"; delivery happens while online (in on_event, or on the
// worker thread with start_thread).
//
// stats_json: {"events","mutations","connectivity","settings","thrown",
// "last_sequence","out_of_order","pending","delivered","online",
// "thread_running","analytics_enabled","pseudonymous_id"}.
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <wep/plugin.hpp>

namespace {

struct Options {
  bool throw_on_event = false;
  int64_t sleep_on_event_ms = 0;
  bool start_thread = false;
  bool fail_start = false;
  bool fail_after_subscribe = false;
  bool pending = false;
  uint32_t subscribe = WEP_EVENT_MUTATION_COMMITTED | WEP_EVENT_CONNECTIVITY_CHANGED | WEP_EVENT_SETTING_CHANGED;
  int64_t read_log_after = -1;  // -1: do not read
  int block_on_fd = -1;
};

Options parse_options(std::string_view json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError() || !doc.IsObject())
    throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "test plugin config: expected a JSON object");
  Options options;
  for (const auto& member : doc.GetObject()) {
    const std::string key = member.name.GetString();
    const auto& value = member.value;
    auto expect_bool = [&](bool& out) {
      if (!value.IsBool())
        throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "test plugin config: /" + key + ": expected boolean");
      out = value.GetBool();
    };
    if (key == "throw_on_event") {
      expect_bool(options.throw_on_event);
    } else if (key == "start_thread") {
      expect_bool(options.start_thread);
    } else if (key == "fail_start") {
      expect_bool(options.fail_start);
    } else if (key == "fail_after_subscribe") {
      expect_bool(options.fail_after_subscribe);
    } else if (key == "pending") {
      expect_bool(options.pending);
    } else if (key == "sleep_on_event_ms") {
      if (!value.IsInt64() || value.GetInt64() < 0 || value.GetInt64() > 60000)
        throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "test plugin config: /sleep_on_event_ms: expected 0..60000");
      options.sleep_on_event_ms = value.GetInt64();
    } else if (key == "subscribe") {
      if (!value.IsUint() || value.GetUint() > 7)
        throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "test plugin config: /subscribe: expected a mask 0..7");
      options.subscribe = value.GetUint();
    } else if (key == "block_on_fd") {
      if (!value.IsInt() || value.GetInt() < 0)
        throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "test plugin config: /block_on_fd: expected a file descriptor");
      options.block_on_fd = value.GetInt();
    } else if (key == "read_log_after") {
      if (!value.IsInt64() || value.GetInt64() < 0)
        throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "test plugin config: /read_log_after: expected a sequence >= 0");
      options.read_log_after = value.GetInt64();
    } else {
      throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "test plugin config: /" + key + ": unknown key");
    }
  }
  return options;
}

class TestEffectPlugin final : public wep::EffectPlugin {
 public:
  explicit TestEffectPlugin(wep::Host host) : host_(host) {}

  ~TestEffectPlugin() override {
    // stop() is always called before destroy; this only guards misuse.
    if (thread_.joinable()) stop(0);
  }

  void start() override {
    options_ = parse_options(host_.config_json());
    if (options_.fail_start) throw wep::Error(WEP_ERR_FAILED, "test plugin: fail_start is set");
    analytics_enabled_ = host_.setting_json("analytics_enabled").value_or("unknown");
    pseudonymous_id_ = host_.pseudonymous_id().value_or("");
    if (options_.read_log_after >= 0) {
      log_last_sequence_ = host_.last_mutation_sequence().value_or(-1);
      int64_t previous = options_.read_log_after;
      host_.read_event_log(options_.read_log_after, [&](const wep_event& event) {
        if (log_trace_.size() < 16384) {
          if (!log_trace_.empty()) log_trace_ += ",";
          log_trace_ +=
              event.kind == WEP_EVENT_MUTATION_COMMITTED
                  ? "m" + std::to_string(event.mutation.sequence)
                  : std::string(wep::view(event.setting.key)) + "=" + std::string(wep::view(event.setting.value_json));
        }
        if (event.kind != WEP_EVENT_MUTATION_COMMITTED) return true;
        if (event.mutation.sequence <= previous) ++out_of_order_;
        previous = event.mutation.sequence;
        ++log_read_;
        return true;
      });
    }
    if (options_.start_thread) {
      thread_running_ = true;
      thread_ = std::thread([this] { run(); });
    }
    // A host without a bus (WEP_ERR_UNSUPPORTED) is fine: events just never come.
    const wep_status subscribed = host_.subscribe(options_.subscribe);
    if (subscribed != WEP_OK && subscribed != WEP_ERR_UNSUPPORTED)
      throw wep::Error(WEP_ERR_FAILED, "test plugin: subscribe failed with status " + std::to_string(subscribed));
    if (options_.fail_after_subscribe) throw wep::Error(WEP_ERR_FAILED, "test plugin: fail_after_subscribe is set");
    host_.log(WEP_LOG_INFO, "started");
  }

  void on_event(const wep_event& event) override {
    if (options_.block_on_fd >= 0 && event.kind == WEP_EVENT_MUTATION_COMMITTED) {
      char byte = 0;
      while (::read(options_.block_on_fd, &byte, 1) < 0 && errno == EINTR) {
      }
    }
    {
      std::lock_guard lock(mutex_);
      ++events_;
      switch (event.kind) {
        case WEP_EVENT_MUTATION_COMMITTED:
          ++mutations_;
          if (event.mutation.sequence <= last_sequence_) ++out_of_order_;
          last_sequence_ = event.mutation.sequence;
          ++pending_;
          break;
        case WEP_EVENT_CONNECTIVITY_CHANGED:
          ++connectivity_;
          online_ = event.connectivity.online != 0;
          break;
        case WEP_EVENT_SETTING_CHANGED:
          ++settings_;
          if (wep::view(event.setting.key) == "analytics_enabled")
            analytics_enabled_ = std::string(wep::view(event.setting.value_json));
          break;
        default:
          break;
      }
      if (online_ && !options_.start_thread) {
        delivered_ += pending_;
        pending_ = 0;
      }
      if (options_.throw_on_event) ++thrown_;
    }
    wake_.notify_all();
    if (options_.sleep_on_event_ms > 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.sleep_on_event_ms));
    if (options_.throw_on_event) throw std::runtime_error("test plugin: throw_on_event is set");
  }

  std::optional<int64_t> pending_count() override {
    if (!options_.pending) return std::nullopt;
    std::lock_guard lock(mutex_);
    return pending_;
  }

  std::string stats_json() override {
    std::lock_guard lock(mutex_);
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    w.StartObject();
    w.Key("events");
    w.Int64(events_);
    w.Key("mutations");
    w.Int64(mutations_);
    w.Key("connectivity");
    w.Int64(connectivity_);
    w.Key("settings");
    w.Int64(settings_);
    w.Key("thrown");
    w.Int64(thrown_);
    w.Key("last_sequence");
    w.Int64(last_sequence_);
    w.Key("out_of_order");
    w.Int64(out_of_order_);
    w.Key("pending");
    w.Int64(pending_);
    w.Key("delivered");
    w.Int64(delivered_);
    w.Key("online");
    w.Bool(online_);
    w.Key("thread_running");
    w.Bool(thread_running_);
    w.Key("analytics_enabled");
    w.String(analytics_enabled_.c_str());
    w.Key("pseudonymous_id");
    w.String(pseudonymous_id_.c_str());
    w.Key("log_read");
    w.Int64(log_read_);
    w.Key("log_last_sequence");
    w.Int64(log_last_sequence_);
    w.Key("log_trace");
    w.String(log_trace_.c_str());
    w.EndObject();
    return buffer.GetString();
  }

  bool stop(uint32_t) override {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    return true;
  }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return stopping_ || (online_ && pending_ > 0); });
      if (stopping_) break;
      delivered_ += pending_;
      pending_ = 0;
    }
    thread_running_ = false;
    lock.unlock();
    std::ofstream(std::string(host_.data_dir()) + "/thread_exited") << "joined\n";
  }

  wep::Host host_;
  Options options_;
  std::mutex mutex_;
  std::condition_variable wake_;
  int64_t events_ = 0, mutations_ = 0, connectivity_ = 0, settings_ = 0, thrown_ = 0;
  int64_t last_sequence_ = 0, out_of_order_ = 0, pending_ = 0, delivered_ = 0;
  int64_t log_read_ = 0, log_last_sequence_ = -1;
  std::string log_trace_;  // "m3,analytics_enabled=false,m4": what the log replayed
  bool online_ = false;
  bool stopping_ = false;
  bool thread_running_ = false;
  std::string analytics_enabled_;
  std::string pseudonymous_id_;
  std::thread thread_;
};

}  // namespace

#ifndef TEST_EFFECT_NAME
#define TEST_EFFECT_NAME "test_effect"
#endif

WEP_EFFECT_PLUGIN(TEST_EFFECT_NAME, "1.0.0", [](wep::Host host) { return std::make_unique<TestEffectPlugin>(host); })
