// bench_nats: events/s into a 3-node NATS JetStream cluster (nats-server
// processes on loopback, file storage, a stream with 3 replicas), through
// the real plugin (host stub + analytics plugin + its flusher + nats
// transport) draining a pre-filled backlog, against a bare libnats
// asynchronous publisher sending the same messages (same bodies, same
// Nats-Msg-Id) to the same cluster in the same run.
//
//   bench_nats [events=1000000] [batch_size=1000] [rounds=3]
//
// Each phase gets a fresh stream (created before, deleted after), so both
// store every message (no duplicates). The phases alternate their order from
// round to round. The figure is the median of the per-round ratios
// plugin/reference, with their spread. One figure per line.
#include <Poco/DateTime.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/TemporaryFile.h>
#include <nats/nats.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <iostream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>
#include <wep/bench/delivery_setup.hpp>
#include <wep/host_stub/host.hpp>
#include <wep/nats_cluster/nats_cluster.hpp>
#include <wep/plugin.hpp>
#include <wep/support/transport_json.hpp>

#include "queue_store.hpp"  // event_id_for, iso8601_utc: the ids the plugin sends

namespace {

using Clock = std::chrono::steady_clock;
using wep::bench::backlog_properties;
using wep::bench::delivery_config;
using wep::bench::prefill_queue;
const std::string kStream = "BENCH";
const std::string kSubject = "bench.events";

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// The analytics config delivering to the cluster.
std::string analytics_config(const std::vector<std::string>& servers, uint32_t batch_size) {
  return delivery_config(WEP_NATS_PATH, batch_size, [&](wep::bench::JsonWriter& w) {
    w.Key("servers");
    w.StartArray();
    for (const auto& url : servers) w.String(url.c_str());
    w.EndArray();
    w.Key("subject");
    w.String(kSubject.c_str());
    w.Key("stream");
    w.String(kStream.c_str());
    w.Key("timeout_ms");
    w.Uint(30000);
  });
}

// The messages the plugin sends for that backlog: body and Nats-Msg-Id.
struct Messages {
  std::vector<std::string> bodies;
  std::vector<std::string> ids;
};

Messages messages_for(int64_t events, const std::string& user_id, const std::string& created_at) {
  Messages out;
  out.bodies.reserve(static_cast<size_t>(events));
  out.ids.reserve(static_cast<size_t>(events));
  wep::transport::RowEncoder encoder;
  const std::string created_at_utc = wep::analytics::iso8601_utc(created_at);
  std::string why;
  for (int64_t i = 1; i <= events; ++i) {
    out.ids.push_back(wep::analytics::event_id_for(user_id, i, created_at));
    const std::string properties = backlog_properties(i);
    const wep_row row{i,
                      wep::str(out.ids.back()),
                      wep::str("note_created"),
                      wep::str(properties),
                      wep::str(user_id),
                      wep::str(created_at_utc)};
    std::string body;
    if (!encoder.append(row, body, why)) throw std::runtime_error("cannot encode row: " + why);
    out.bodies.push_back(std::move(body));
  }
  return out;
}

struct PluginRun {
  double events_per_s = 0;
  int64_t requests = 0;
};

PluginRun run_plugin(wep::nats_cluster::NatsCluster& cluster, const std::filesystem::path& work, int64_t events,
                     uint32_t batch_size, const std::string& created_at, std::string& user_id) {
  const std::filesystem::path data_dir = work / "host";
  std::filesystem::remove_all(data_dir);
  wep::host_stub::HostOptions options;
  options.data_dir = data_dir;
  options.plugins.push_back({WEP_ANALYTICS_PATH, analytics_config(cluster.urls(), batch_size)});
  {
    wep::host_stub::Host host(options);  // creates the queue database
    user_id = host.pseudonymous_id();
  }
  prefill_queue(data_dir / "plugins" / "analytics" / "analytics.db", events, user_id, created_at);
  ::sync();  // the backlog's write-back is set-up, not the plugin's work

  wep::host_stub::Host host(options);
  if (host.pending().value_or(-1) != events) throw std::runtime_error("the backlog is not pending");
  const auto start = Clock::now();
  host.set_online(true);
  // Another thread's progress: poll the pending count (an O(1) read).
  while (host.pending().value_or(-1) != 0) {
    if (seconds_since(start) > 1800) throw std::runtime_error("the plugin did not drain the backlog in 30 minutes");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  PluginRun run;
  run.events_per_s = static_cast<double>(events) / seconds_since(start);
  host.shutdown();
  return run;
}

// The bare publisher: one connection, every message published asynchronously
// with its id (at most max_pending unacknowledged), then wait for all acks.
double run_reference(wep::nats_cluster::NatsCluster& cluster, const Messages& messages) {
  struct Acks {
    std::atomic<int64_t> ok{0}, duplicates{0}, errors{0};
  } acks;
  natsOptions* options = nullptr;
  natsOptions_Create(&options);
  const std::vector<std::string> urls = cluster.urls();
  std::vector<const char*> servers;
  for (const auto& url : urls) servers.push_back(url.c_str());
  natsOptions_SetServers(options, servers.data(), static_cast<int>(servers.size()));
  natsConnection* nc = nullptr;
  if (natsConnection_Connect(&nc, options) != NATS_OK) throw std::runtime_error("reference: cannot connect");
  natsOptions_Destroy(options);
  jsOptions js_options;
  jsOptions_Init(&js_options);
  js_options.PublishAsync.MaxPending = 4000;
  js_options.PublishAsync.AckHandlerClosure = &acks;
  js_options.PublishAsync.AckHandler = [](jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr*, void* closure) {
    auto& a = *static_cast<Acks*>(closure);
    if (!ack) {
      a.errors.fetch_add(1);
    } else {
      (ack->Duplicate ? a.duplicates : a.ok).fetch_add(1);
    }
    natsMsg_Destroy(msg);
  };
  jsCtx* js = nullptr;
  natsConnection_JetStream(&js, nc, &js_options);

  const auto start = Clock::now();
  jsPubOptions publish_options;
  jsPubOptions_Init(&publish_options);
  for (size_t i = 0; i < messages.bodies.size(); ++i) {
    natsMsg* msg = nullptr;
    natsMsg_Create(&msg, kSubject.c_str(), nullptr, messages.bodies[i].data(),
                   static_cast<int>(messages.bodies[i].size()));
    publish_options.MsgId = messages.ids[i].c_str();
    natsStatus status;
    while ((status = js_PublishMsgAsync(js, &msg, &publish_options)) == NATS_TIMEOUT) {
    }  // stalled at max_pending: try again
    if (status != NATS_OK) {
      natsMsg_Destroy(msg);
      throw std::runtime_error(std::string("reference: publish failed: ") + natsStatus_GetText(status));
    }
  }
  jsPubOptions complete_options;
  jsPubOptions_Init(&complete_options);
  complete_options.MaxWait = 600000;
  if (js_PublishAsyncComplete(js, &complete_options) != NATS_OK) throw std::runtime_error("reference: acks missing");
  const double elapsed = seconds_since(start);
  jsCtx_Destroy(js);
  natsConnection_Destroy(nc);
  if (acks.errors.load() > 0 || acks.duplicates.load() > 0) {
    throw std::runtime_error("reference: " + std::to_string(acks.errors.load()) + " errors, " +
                             std::to_string(acks.duplicates.load()) + " duplicates");
  }
  return static_cast<double>(messages.bodies.size()) / elapsed;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

void fresh_stream(wep::nats_cluster::NatsCluster& cluster) {
  cluster.delete_stream(kStream);
  wep::nats_cluster::StreamOptions stream;
  stream.name = kStream;
  stream.subjects = {kSubject};
  stream.replicas = 3;
  cluster.create_stream(stream);
}

void require_stored(wep::nats_cluster::NatsCluster& cluster, int64_t events, const char* phase) {
  const int64_t stored = cluster.stream_messages(kStream);
  if (stored != events) {
    throw std::runtime_error(std::string(phase) + ": the stream holds " + std::to_string(stored) + " messages, not " +
                             std::to_string(events));
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t events = argc > 1 ? std::atoll(argv[1]) : 1000000;
  const uint32_t batch_size = argc > 2 ? static_cast<uint32_t>(std::atoi(argv[2])) : 1000;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 3;
  try {
    Poco::TemporaryFile temp_dir;  // removed with everything in it at exit
    temp_dir.createDirectories();
    const std::filesystem::path work = temp_dir.path();
    std::filesystem::create_directories(work / "cluster");
    wep::nats_cluster::ClusterOptions options;
    options.dir = work / "cluster";
    wep::nats_cluster::NatsCluster cluster(options);
    const std::string created_at =
        Poco::DateTimeFormatter::format(Poco::DateTime(), "%Y-%m-%dT%H:%M:%S.%i");  // the stored format
    std::cout << "bench_nats: " << events << " events of the same shape, batch_size " << batch_size << ", " << rounds
              << " round(s), 3 nats-server nodes on loopback, stream R3 file storage, "
              << std::thread::hardware_concurrency() << " CPU(s)" << std::endl;

    std::vector<double> plugin_rates, reference_rates, ratios;
    Messages messages;
    std::string user_id;
    for (int round = 0; round < rounds; ++round) {
      double plugin = 0, reference = 0;
      auto plugin_phase = [&] {
        fresh_stream(cluster);
        plugin = run_plugin(cluster, work, events, batch_size, created_at, user_id).events_per_s;
        require_stored(cluster, events, "plugin");
      };
      auto reference_phase = [&] {
        fresh_stream(cluster);
        reference = run_reference(cluster, messages);
        require_stored(cluster, events, "reference");
      };
      if (round == 0) {
        plugin_phase();  // also fixes the user id the messages are built with
        messages = messages_for(events, user_id, created_at);
        reference_phase();
      } else if (round % 2 == 1) {
        reference_phase();
        plugin_phase();
      } else {
        plugin_phase();
        reference_phase();
      }
      plugin_rates.push_back(plugin);
      reference_rates.push_back(reference);
      ratios.push_back(plugin / reference);
      std::cout << "round " << round + 1 << ": plugin " << std::fixed << std::setprecision(0) << plugin
                << " events/s, reference " << reference << " events/s, ratio " << std::setprecision(3)
                << plugin / reference << std::endl;
    }
    cluster.delete_stream(kStream);
    std::cout << std::fixed << std::setprecision(0) << "plugin_events_per_s_median: " << median(plugin_rates) << "\n"
              << "reference_events_per_s_median: " << median(reference_rates) << "\n"
              << std::setprecision(3) << "ratio_median: " << median(ratios) << " (min "
              << *std::min_element(ratios.begin(), ratios.end()) << ", max "
              << *std::max_element(ratios.begin(), ratios.end()) << ")" << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "bench_nats: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
