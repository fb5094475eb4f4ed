#include "stats_json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace wep::analytics {

namespace {

using Writer = rapidjson::Writer<rapidjson::StringBuffer>;

// One counter of the stats object: its key and the Stats member it shows.
struct Counter {
  const char* key;
  std::atomic<int64_t> Stats::*value;
};

constexpr Counter kTotals[] = {{"accepted", &Stats::accepted}, {"stored", &Stats::stored}};
constexpr Counter kDropped[] = {{"disabled", &Stats::dropped_disabled},       {"unmapped", &Stats::dropped_unmapped},
                                {"buffer_full", &Stats::dropped_buffer_full}, {"invalid", &Stats::dropped_invalid},
                                {"store_error", &Stats::dropped_store_error}, {"queue_cap", &Stats::dropped_queue_cap}};
constexpr Counter kPropertiesDropped[] = {{"pii", &Stats::properties_dropped_pii},
                                          {"email", &Stats::pii_email},
                                          {"phone", &Stats::pii_phone},
                                          {"ip", &Stats::pii_ip},
                                          {"url", &Stats::pii_url},
                                          {"long_number", &Stats::pii_long_number},
                                          {"secret", &Stats::pii_secret},
                                          {"type", &Stats::properties_dropped_type},
                                          {"long_string", &Stats::properties_dropped_long}};
constexpr Counter kDelivery[] = {{"delivered", &Stats::delivered},
                                 {"dead_lettered", &Stats::dead_lettered},
                                 {"requests", &Stats::requests},
                                 {"requests_in_flight", &Stats::requests_in_flight},
                                 {"retries", &Stats::retries},
                                 {"splits", &Stats::splits},
                                 {"systemic_failures", &Stats::systemic_failures},
                                 {"requeued", &Stats::requeued},
                                 {"corrupt_recoveries", &Stats::corrupt_recoveries}};
constexpr Counter kQueueFile[] = {{"salvaged_rows", &Stats::salvaged_rows},
                                  {"queue_file_replaced", &Stats::queue_file_replaced}};
constexpr Counter kCatchUp[] = {{"reads", &Stats::catch_up_runs},
                                {"replayed", &Stats::catch_up_replayed},
                                {"ignored_live", &Stats::catch_up_ignored_live},
                                {"deferred", &Stats::catch_up_deferred},
                                {"discarded", &Stats::catch_up_discarded}};

template <size_t N>
void write_counters(Writer& w, const Stats& s, const Counter (&counters)[N]) {
  for (const Counter& counter : counters) {
    w.Key(counter.key);
    w.Int64((s.*counter.value).load(std::memory_order_relaxed));
  }
}

void write_optional(Writer& w, const char* key, const std::optional<int64_t>& value) {
  w.Key(key);
  value ? w.Int64(*value) : w.Null();
}

}  // namespace

std::string stats_json(const Stats& s, const StatsView& view) {
  rapidjson::StringBuffer buffer;
  Writer w(buffer);
  w.StartObject();
  write_counters(w, s, kTotals);
  w.Key("dropped");
  w.StartObject();
  write_counters(w, s, kDropped);
  w.EndObject();
  w.Key("properties_dropped");
  w.StartObject();
  write_counters(w, s, kPropertiesDropped);
  w.EndObject();
  w.Key("aged_out");
  w.Int64(s.aged_out.load(std::memory_order_relaxed));
  write_optional(w, "pending", view.pending);
  write_optional(w, "dead_letter_rows", view.dead_letter_rows);
  write_counters(w, s, kDelivery);
  w.Key("flusher");
  w.String(Stats::flusher_state_name(s.flusher_state.load()));
  write_counters(w, s, kQueueFile);
  w.Key("catch_up");
  w.StartObject();
  w.Key("on");
  w.Bool(s.catch_up_on.load());
  const int64_t checkpoint = s.checkpoint.load();
  write_optional(w, "checkpoint", checkpoint >= 0 ? std::optional<int64_t>(checkpoint) : std::nullopt);
  write_counters(w, s, kCatchUp);
  w.Key("holding");
  w.Bool(s.catch_up_holding.load());
  w.EndObject();
  w.Key("enabled");
  w.Bool(view.enabled);
  w.Key("online");
  w.Bool(view.online);
  w.Key("database");
  w.String(view.database.c_str(), static_cast<rapidjson::SizeType>(view.database.size()));
  w.Key("last_error");
  const std::string last_error = s.last_error();
  last_error.empty() ? w.Null() : w.String(last_error.c_str(), static_cast<rapidjson::SizeType>(last_error.size()));
  w.EndObject();
  return {buffer.GetString(), buffer.GetSize()};
}

}  // namespace wep::analytics
