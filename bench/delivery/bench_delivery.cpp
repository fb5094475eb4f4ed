// bench_delivery: events/s delivered over HTTPS with keep-alive to the
// loopback PostgREST backend (the `test-backend` process), through the real
// plugin (host stub + analytics plugin + its flusher + supabase transport),
// against a bare Poco HTTPSClientSession client feeding the same backend
// pre-built batches of the same shape and size, and against the supabase
// transport alone fed the same rows (to tell the flusher's share of the cost
// from the transport's); plus the process RSS sampled while the plugin
// drains the backlog.
//
//   bench_delivery [events] [batch_size] [rounds] [--plugin-only] [--no-pin]
//   (defaults 1000000 events, 500 rows per request, 5 rounds; see
//   CpuPlacement for --no-pin)
//
// The backlog is pre-filled straight into the plugin's SQLite queue (one
// transaction) while the host is stopped, so the figure is the delivery path
// alone. Each phase gets a fresh backend process so both start from an empty
// store. One figure per line.
#include <Poco/DateTime.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetSSL.h>
#include <Poco/NullStream.h>
#include <Poco/Pipe.h>
#include <Poco/PipeStream.h>
#include <Poco/Process.h>
#include <Poco/StreamCopier.h>
#include <Poco/UUIDGenerator.h>
#include <malloc.h>
#include <rapidjson/document.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sched.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <wep/bench/delivery_setup.hpp>
#include <wep/host_api_table.hpp>
#include <wep/host_stub/host.hpp>
#include <wep/plugin_host.hpp>
#include <wep/test_backend/backend.hpp>

namespace {

using Clock = std::chrono::steady_clock;
using wep::bench::backlog_properties;
using wep::bench::delivery_config;
using wep::bench::prefill_queue;
const std::string kApiKey = "bench-anon-key";

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// Bytes in use on the malloc heap (all arenas), in KiB.
int64_t heap_in_use_kb() { return static_cast<int64_t>(mallinfo2().uordblks / 1024); }

int64_t rss_kb() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoll(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

// Where the backend and the client run. Pinned (the default on a machine
// with 2+ CPUs): the backend process on one CPU, every thread of this
// process (the client side: host, plugin, flusher, transport, reference
// client) on another, as if the backend were another machine. Unpinned,
// the backend and the client compete for the same CPUs, and whichever side
// does more work of its own (the plugin reads, hashes and deletes rows; the
// reference sends bodies built in advance) also slows the other.
struct CpuPlacement {
  bool pinned = false;
  int backend_cpu = 0;
  int client_cpu = 1;
};
CpuPlacement g_placement;

void run_calling_thread_on(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  if (sched_setaffinity(0, sizeof set, &set) != 0) {
    throw std::runtime_error("cannot pin to CPU " + std::to_string(cpu) + ": " + std::strerror(errno));
  }
}

// A test-backend process on an ephemeral port (Poco::Process); its stderr
// (a line per request) goes to a log file; stopped when destroyed.
class BackendProcess {
 public:
  explicit BackendProcess(const std::filesystem::path& work_dir) : log_(work_dir / "test-backend.log", std::ios::app) {
    // A child starts with its parent thread's CPU mask, and so do the
    // threads it creates.
    if (g_placement.pinned) run_calling_thread_on(g_placement.backend_cpu);
    try {
      const Poco::Process::Args args{"--cert",    wep::test::test_certificates().server_cert,
                                     "--key",     wep::test::test_certificates().server_key,
                                     "--api-key", kApiKey};
      handle_.emplace(Poco::Process::launch(TEST_BACKEND_PATH, args, &stdin_, &stdout_, &stderr_));
    } catch (...) {
      if (g_placement.pinned) run_calling_thread_on(g_placement.client_cpu);
      throw;
    }
    if (g_placement.pinned) run_calling_thread_on(g_placement.client_cpu);
    stderr_drain_ = std::thread([this] {
      Poco::PipeInputStream errors(stderr_);
      for (std::string line; std::getline(errors, line);) log_ << line << '\n';
    });
    Poco::PipeInputStream out(stdout_);
    std::string line;
    std::getline(out, line);  // it prints this line once it listens, or exits
    const std::string prefix = "listening https://127.0.0.1:";
    if (line.rfind(prefix, 0) != 0) {
      stop();
      throw std::runtime_error("test-backend did not start");
    }
    port_ = static_cast<uint16_t>(std::stoi(line.substr(prefix.size())));
  }
  ~BackendProcess() { stop(); }
  uint16_t port() const { return port_; }
  std::string url() const { return "https://localhost:" + std::to_string(port_); }

 private:
  void stop() {
    if (!handle_) return;
    stdin_.close(Poco::Pipe::CLOSE_WRITE);  // its lifeline: it exits at end of input
    handle_->wait();
    handle_.reset();
    if (stderr_drain_.joinable()) stderr_drain_.join();
  }

  std::ofstream log_;
  Poco::Pipe stdin_, stdout_, stderr_;
  std::optional<Poco::ProcessHandle> handle_;
  std::thread stderr_drain_;
  uint16_t port_ = 0;
};

// Samples the RSS every 50 ms until stopped; keeps min, max and the samples.
class RssSampler {
 public:
  RssSampler() : thread_([this] { run(); }) {}
  ~RssSampler() { stop(); }
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  int64_t min_kb() const { return *std::min_element(samples_.begin(), samples_.end()); }
  int64_t max_kb() const { return *std::max_element(samples_.begin(), samples_.end()); }
  const std::vector<int64_t>& samples() const { return samples_; }
  const std::vector<int64_t>& heap_samples() const { return heap_samples_; }

 private:
  void run() {
    std::unique_lock lock(mutex_);
    do {
      samples_.push_back(rss_kb());
      heap_samples_.push_back(heap_in_use_kb());
    } while (!wake_.wait_for(lock, std::chrono::milliseconds(50), [this] { return stopping_; }));
    samples_.push_back(rss_kb());
    heap_samples_.push_back(heap_in_use_kb());
  }
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::vector<int64_t> samples_;
  std::vector<int64_t> heap_samples_;
  std::thread thread_;
};

std::string created_at_now() { return Poco::DateTimeFormatter::format(Poco::DateTime(), "%Y-%m-%dT%H:%M:%S.%i"); }

// The analytics config delivering to test-backend at `url`.
std::string analytics_config(const std::string& url, uint32_t batch_size) {
  return delivery_config(WEP_SUPABASE_PATH, batch_size, [&](wep::bench::JsonWriter& w) {
    w.Key("url");
    w.String(url.c_str());
    w.Key("api_key");
    w.String(kApiKey.c_str());
    w.Key("ca_file");
    w.String(wep::test::test_certificates().ca_file.c_str());
    w.Key("timeout_ms");
    w.Uint(30000);
  });
}

int64_t plugin_stat(wep::host_stub::Host& host, const char* name) {
  rapidjson::Document stats;
  const std::string text = host.stats_json();
  stats.Parse(text.c_str());
  if (!stats.IsObject() || !stats.HasMember("plugins")) return -1;
  const auto& plugins = stats["plugins"];
  if (!plugins.IsObject() || !plugins.HasMember("analytics")) return -1;
  const auto& analytics = plugins["analytics"];
  return analytics.HasMember(name) && analytics[name].IsInt64() ? analytics[name].GetInt64() : -1;
}

struct PluginFigures {
  double events_per_s = 0;
  int64_t requests = 0;
  int64_t rss_before_fill_kb = 0, rss_at_online_kb = 0, rss_min_kb = 0, rss_max_kb = 0, rss_end_kb = 0;
  std::vector<int64_t> rss_samples;
  std::vector<int64_t> heap_samples;
  std::string user_id;  // the host's pseudonymous id
};

PluginFigures run_plugin(const std::filesystem::path& work, int64_t events, uint32_t batch_size) {
  std::filesystem::create_directories(work);
  BackendProcess backend(work);
  const std::filesystem::path data_dir = work / "host";
  wep::host_stub::HostOptions options;
  options.data_dir = data_dir;
  options.plugins.push_back({WEP_ANALYTICS_PATH, analytics_config(backend.url(), batch_size)});

  PluginFigures figures;
  figures.rss_before_fill_kb = rss_kb();
  {
    wep::host_stub::Host host(options);  // creates and migrates the queue database
    figures.user_id = host.pseudonymous_id();
  }
  prefill_queue(data_dir / "plugins" / "analytics" / "analytics.db", events, figures.user_id, created_at_now());
  ::sync();  // the backlog's write-back is the bench's set-up, not the plugin's work

  wep::host_stub::Host host(options);
  const int64_t pending = host.pending().value_or(-1);
  if (pending != events) {
    throw std::runtime_error("pre-filled " + std::to_string(events) + " rows but pending is " +
                             std::to_string(pending));
  }
  figures.rss_at_online_kb = rss_kb();
  RssSampler sampler;
  const auto start = Clock::now();
  host.set_online(true);
  // Another thread's progress: poll the pending count (an O(1) read).
  while (host.pending().value_or(-1) != 0) {
    if (seconds_since(start) > 1800) throw std::runtime_error("delivery did not finish in 30 minutes");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double elapsed = seconds_since(start);
  sampler.stop();
  figures.events_per_s = static_cast<double>(events) / elapsed;
  figures.requests = plugin_stat(host, "requests");
  figures.rss_min_kb = sampler.min_kb();
  figures.rss_max_kb = sampler.max_kb();
  figures.rss_end_kb = rss_kb();
  figures.rss_samples = sampler.samples();
  figures.heap_samples = sampler.heap_samples();
  host.shutdown();
  return figures;
}

struct ReferenceFigures {
  double events_per_s = 0;
  int64_t requests = 0;
};

// The supabase transport alone (loaded like the flusher loads it), fed the
// same rows already in wire form: the ceiling for the plugin, which adds
// the queue (read, event ids, delete) and the flusher around it.
ReferenceFigures run_transport_only(const std::filesystem::path& work, int64_t events, uint32_t batch_size,
                                    const std::string& user_id) {
  BackendProcess backend(work);
  std::string error;
  auto library = wep::PluginLibrary::open(WEP_SUPABASE_PATH, error);
  if (!library) throw std::runtime_error(error);
  rapidjson::StringBuffer config_buffer;
  {
    rapidjson::Writer<rapidjson::StringBuffer> w(config_buffer);
    w.StartObject();
    w.Key("url");
    w.String(backend.url().c_str());
    w.Key("api_key");
    w.String(kApiKey.c_str());
    w.Key("ca_file");
    w.String(wep::test::test_certificates().ca_file.c_str());
    w.Key("timeout_ms");
    w.Uint(30000);
    w.EndObject();
  }
  const std::string config = config_buffer.GetString();
  const wep::HostApiTable api(library->name(), config, work.string(), wep::HostServices{});  // logs dropped
  wep::TransportHandle transport(library);
  if (!transport.create(api.get(), error) || !transport.start(error)) throw std::runtime_error(error);

  const std::string event_type = "note_created";
  const std::string created_at = created_at_now() + "Z";
  std::vector<std::string> event_ids, properties;
  event_ids.reserve(static_cast<size_t>(events));
  properties.reserve(static_cast<size_t>(events));
  Poco::UUIDGenerator& uuids = Poco::UUIDGenerator::defaultGenerator();
  for (int64_t i = 1; i <= events; ++i) {
    event_ids.push_back(uuids.createRandom().toString());
    properties.push_back(backlog_properties(i));
  }
  std::vector<wep_row> rows;
  rows.reserve(static_cast<size_t>(events));
  for (size_t i = 0; i < static_cast<size_t>(events); ++i) {
    rows.push_back({static_cast<int64_t>(i + 1), wep::str(event_ids[i]), wep::str(event_type), wep::str(properties[i]),
                    wep::str(user_id), wep::str(created_at)});
  }
  std::vector<uint8_t> rejected(batch_size);
  std::string reason;
  ReferenceFigures figures;
  const auto start = Clock::now();
  for (int64_t first = 0; first < events; first += batch_size) {
    const size_t count = static_cast<size_t>(std::min<int64_t>(batch_size, events - first));
    std::fill(rejected.begin(), rejected.end(), 0);
    reason.clear();
    wep_verdict verdict{};
    verdict.struct_size = sizeof verdict;
    verdict.kind = WEP_VERDICT_FAILED;
    verdict.retry_after_ms = -1;
    verdict.rejected = rejected.data();
    verdict.reason = wep::string_sink(reason);
    transport.send({&rows[static_cast<size_t>(first)], count}, verdict);
    if (verdict.kind != WEP_VERDICT_DELIVERED) throw std::runtime_error("transport-only send failed: " + reason);
    ++figures.requests;
  }
  figures.events_per_s = static_cast<double>(events) / seconds_since(start);
  transport.stop(5000);
  return figures;
}

// The bare client: the same rows, batched alike, bodies built before timing.
ReferenceFigures run_reference(const std::filesystem::path& work, int64_t events, uint32_t batch_size,
                               const std::string& user_id) {
  BackendProcess backend(work);
  std::vector<std::string> bodies;
  const std::string created_at = created_at_now() + "Z";
  Poco::UUIDGenerator& uuids = Poco::UUIDGenerator::defaultGenerator();
  for (int64_t first = 1; first <= events; first += batch_size) {
    rapidjson::StringBuffer buffer;
    rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
    w.StartArray();
    for (int64_t i = first; i < std::min<int64_t>(first + batch_size, events + 1); ++i) {
      w.StartObject();
      w.Key("event_id");
      w.String(uuids.createRandom().toString().c_str());
      w.Key("event_type");
      w.String("note_created");
      w.Key("properties");
      w.StartObject();
      w.Key("n");
      w.Int64(i);
      w.Key("kind");
      w.String("text");
      w.EndObject();
      w.Key("user_id");
      w.String(user_id.c_str());
      w.Key("created_at");
      w.String(created_at.c_str());
      w.EndObject();
    }
    w.EndArray();
    bodies.emplace_back(buffer.GetString(), buffer.GetSize());
  }

  Poco::Net::Context::Ptr context =
      new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, "", "", wep::test::test_certificates().ca_file,
                             Poco::Net::Context::VERIFY_RELAXED, 9, false, "ALL:!ADH:!LOW:!EXP:!MD5:@STRENGTH");
  Poco::Net::HTTPSClientSession session("localhost", backend.port(), context);
  session.setKeepAlive(true);
  session.setTimeout(Poco::Timespan(30, 0));
  const auto start = Clock::now();
  for (const std::string& body : bodies) {
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, "/rest/v1/analytics_events?on_conflict=event_id",
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.setKeepAlive(true);
    request.set("apikey", kApiKey);
    request.set("Authorization", "Bearer " + kApiKey);
    request.setContentType("application/json");
    request.set("Prefer", "return=minimal, resolution=ignore-duplicates");
    request.setContentLength(static_cast<std::streamsize>(body.size()));
    session.sendRequest(request) << body;
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    Poco::NullOutputStream discard;
    Poco::StreamCopier::copyStream(in, discard);
    if (response.getStatus() / 100 != 2) {
      throw std::runtime_error("reference request answered " + std::to_string(response.getStatus()));
    }
  }
  ReferenceFigures figures;
  figures.events_per_s = static_cast<double>(events) / seconds_since(start);
  figures.requests = static_cast<int64_t>(bodies.size());
  return figures;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

enum class Phase { kPlugin, kTransportAlone, kReference };

}  // namespace

int main(int argc, char** argv) {
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    const bool plugin_only = std::erase(args, "--plugin-only") > 0;
    const bool no_pin = std::erase(args, "--no-pin") > 0;
    const int64_t events = args.size() > 0 ? std::stoll(args[0]) : 1000000;
    const uint32_t batch_size = args.size() > 1 ? static_cast<uint32_t>(std::stoul(args[1])) : 500;
    const int rounds = args.size() > 2 ? std::stoi(args[2]) : 5;
    if (events < 1 || batch_size < 1 || rounds < 1) {
      std::cerr << "usage: bench_delivery [events >= 1] [batch_size >= 1] [rounds >= 1] [--plugin-only] "
                   "[--no-pin]\n";
      return 2;
    }
    const std::filesystem::path work =
        std::filesystem::temp_directory_path() / ("wep-bench-delivery-" + std::to_string(::getpid()));
    std::filesystem::create_directories(work);
    std::cout << "events: " << events << "\nbatch_size: " << batch_size << "\nrounds: " << rounds << std::endl;
    if (!no_pin) {
      cpu_set_t allowed;
      CPU_ZERO(&allowed);
      if (sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_COUNT(&allowed) >= 2) {
        std::vector<int> cpus;
        for (int cpu = 0; cpu < CPU_SETSIZE && cpus.size() < 2; ++cpu)
          if (CPU_ISSET(cpu, &allowed)) cpus.push_back(cpu);
        g_placement = {true, cpus[0], cpus[1]};
        run_calling_thread_on(g_placement.client_cpu);  // before any thread starts: all inherit it
      }
    }
    std::cout << "cpu_placement: "
              << (g_placement.pinned ? "backend on CPU " + std::to_string(g_placement.backend_cpu) +
                                           ", client on CPU " + std::to_string(g_placement.client_cpu)
                                     : std::string("unpinned (backend and client share the CPUs)"))
              << std::endl;
    std::cout << std::fixed << std::setprecision(0);

    // Every round runs the three phases back to back, in an order that
    // rotates from round to round (round 1: plugin first, so its memory
    // figures come from a process nothing ran in before), and compares them
    // within the round: the machine's speed drifts over minutes, so a ratio
    // of two phases seconds apart is the stable figure, and the median of
    // those ratios is the headline.
    std::vector<double> plugin_rates, reference_rates, transport_rates;
    std::vector<double> plugin_ratios, transport_ratios;
    const std::vector<Phase> phases =
        plugin_only ? std::vector<Phase>{Phase::kPlugin}
                    : std::vector<Phase>{Phase::kPlugin, Phase::kTransportAlone, Phase::kReference};
    // The backend checks user_id only for shape: a pseudonymous id like the host's.
    const std::string user_id = Poco::UUIDGenerator::defaultGenerator().createRandom().toString();
    Poco::Net::initializeSSL();
    for (int round = 1; round <= rounds; ++round) {
      const std::filesystem::path round_dir = work / ("round-" + std::to_string(round));
      std::filesystem::create_directories(round_dir);
      double plugin_rate = 0, transport_rate = 0, reference_rate = 0;
      for (size_t k = 0; k < phases.size(); ++k) {
        switch (phases[(k + static_cast<size_t>(round - 1)) % phases.size()]) {
          case Phase::kPlugin: {
            const PluginFigures plugin = run_plugin(round_dir, events, batch_size);
            plugin_rate = plugin.events_per_s;
            std::cout << "round " << round << " plugin_delivered_events_per_s: " << plugin.events_per_s
                      << " requests: " << plugin.requests << std::endl;
            if (round == 1) {
              std::cout << "rss_kb_before_backlog: " << plugin.rss_before_fill_kb << "\n"
                        << "rss_kb_at_online: " << plugin.rss_at_online_kb << "\n"
                        << "rss_kb_min_while_draining: " << plugin.rss_min_kb << "\n"
                        << "rss_kb_max_while_draining: " << plugin.rss_max_kb << "\n"
                        << "rss_kb_after_drain: " << plugin.rss_end_kb << "\n";
              const size_t step = std::max<size_t>(1, plugin.rss_samples.size() / 20);
              std::cout << "rss_kb_samples:";
              for (size_t i = 0; i < plugin.rss_samples.size(); i += step) std::cout << ' ' << plugin.rss_samples[i];
              std::cout << "\nheap_in_use_kb_samples:";
              for (size_t i = 0; i < plugin.heap_samples.size(); i += step) std::cout << ' ' << plugin.heap_samples[i];
              std::cout << std::endl;
            }
            break;
          }
          case Phase::kTransportAlone: {
            const ReferenceFigures transport = run_transport_only(round_dir, events, batch_size, user_id);
            transport_rate = transport.events_per_s;
            std::cout << "round " << round << " transport_alone_events_per_s: " << transport.events_per_s
                      << " requests: " << transport.requests << std::endl;
            break;
          }
          case Phase::kReference: {
            const ReferenceFigures reference = run_reference(round_dir, events, batch_size, user_id);
            reference_rate = reference.events_per_s;
            std::cout << "round " << round << " reference_bare_poco_events_per_s: " << reference.events_per_s
                      << " requests: " << reference.requests << std::endl;
            break;
          }
        }
      }
      plugin_rates.push_back(plugin_rate);
      if (!plugin_only) {
        transport_rates.push_back(transport_rate);
        reference_rates.push_back(reference_rate);
        plugin_ratios.push_back(100.0 * plugin_rate / reference_rate);
        transport_ratios.push_back(100.0 * transport_rate / reference_rate);
        std::cout << std::setprecision(1) << "round " << round
                  << " plugin_to_reference_percent: " << plugin_ratios.back()
                  << " transport_alone_to_reference_percent: " << transport_ratios.back() << std::setprecision(0)
                  << std::endl;
      }
      std::filesystem::remove_all(round_dir);
    }
    Poco::Net::uninitializeSSL();

    std::cout << "plugin_delivered_events_per_s_median: " << median(plugin_rates) << std::endl;
    if (!plugin_only) {
      auto [min_ratio, max_ratio] = std::minmax_element(plugin_ratios.begin(), plugin_ratios.end());
      std::cout << "transport_alone_events_per_s_median: " << median(transport_rates) << "\n"
                << "reference_bare_poco_events_per_s_median: " << median(reference_rates) << "\n"
                << std::setprecision(1) << "plugin_to_reference_percent_median_of_rounds: " << median(plugin_ratios)
                << " (min " << *min_ratio << ", max " << *max_ratio << "; target >= 80)\n"
                << "transport_alone_to_reference_percent_median_of_rounds: " << median(transport_ratios) << std::endl;
    }
    std::filesystem::remove_all(work);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "bench_delivery: " << e.what() << std::endl;
    return 1;
  }
}
