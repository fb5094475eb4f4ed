#include "stats_json.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

namespace wep::analytics {

std::string stats_json(const Stats& s, const StatsView& view) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> w(buffer);
  auto counter = [&w](const char* name, const std::atomic<int64_t>& value) {
    w.Key(name);
    w.Int64(value.load(std::memory_order_relaxed));
  };
  auto optional = [&w](const char* name, const std::optional<int64_t>& value) {
    w.Key(name);
    value ? w.Int64(*value) : w.Null();
  };
  w.StartObject();
  counter("accepted", s.accepted);
  counter("stored", s.stored);
  w.Key("dropped");
  w.StartObject();
  counter("disabled", s.dropped_disabled);
  counter("unmapped", s.dropped_unmapped);
  counter("buffer_full", s.dropped_buffer_full);
  counter("invalid", s.dropped_invalid);
  counter("store_error", s.dropped_store_error);
  counter("queue_cap", s.dropped_queue_cap);
  w.EndObject();
  w.Key("properties_dropped");
  w.StartObject();
  counter("pii", s.properties_dropped_pii);
  counter("email", s.pii_email);
  counter("phone", s.pii_phone);
  counter("ip", s.pii_ip);
  counter("url", s.pii_url);
  counter("long_number", s.pii_long_number);
  counter("secret", s.pii_secret);
  counter("type", s.properties_dropped_type);
  counter("long_string", s.properties_dropped_long);
  w.EndObject();
  counter("aged_out", s.aged_out);
  optional("pending", view.pending);
  optional("dead_letter_rows", view.dead_letter_rows);
  counter("delivered", s.delivered);
  counter("dead_lettered", s.dead_lettered);
  counter("requests", s.requests);
  counter("requests_in_flight", s.requests_in_flight);
  counter("retries", s.retries);
  counter("splits", s.splits);
  counter("systemic_failures", s.systemic_failures);
  counter("requeued", s.requeued);
  counter("corrupt_recoveries", s.corrupt_recoveries);
  w.Key("flusher");
  w.String(Stats::flusher_state_name(s.flusher_state.load()));
  counter("salvaged_rows", s.salvaged_rows);
  counter("queue_file_replaced", s.queue_file_replaced);
  w.Key("catch_up");
  w.StartObject();
  w.Key("on");
  w.Bool(s.catch_up_on.load());
  const int64_t checkpoint = s.checkpoint.load();
  optional("checkpoint", checkpoint >= 0 ? std::optional<int64_t>(checkpoint) : std::nullopt);
  counter("reads", s.catch_up_runs);
  counter("replayed", s.catch_up_replayed);
  counter("ignored_live", s.catch_up_ignored_live);
  counter("deferred", s.catch_up_deferred);
  counter("discarded", s.catch_up_discarded);
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
