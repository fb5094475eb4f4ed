// event_log: a transport plugin built outside the project, against the
// installed SDK (find_package(wep), wep_add_plugin). It appends one line per
// row, "<event_id> <event_type>", to a file named in its config:
//
//   {"path": "events.log"}   relative to the transport's data directory
//
// Idempotent per event id, as the transport contract asks: ids already in the
// file (read at start) or earlier in the batch are not written again. A batch
// that cannot be written completely is cut back off the file and reported as
// "retry later", so the file only holds whole, acknowledged batches.
#include <rapidjson/document.h>
#include <wep/version.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <unordered_set>
#include <wep/plugin.hpp>

namespace {

class EventLogTransport final : public wep::TransportPlugin {
 public:
  explicit EventLogTransport(wep::Host host) : host_(host) {}

  void start() override {
    const std::string text(host_.config_json());
    rapidjson::Document config;
    // Iterative: a config nested 100,000 deep is an error, not a stack overflow.
    config.Parse<rapidjson::kParseIterativeFlag>(text.empty() ? "{}" : text.c_str());
    if (config.HasParseError() || !config.IsObject())
      throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "event_log config: not a JSON object");
    const auto path = config.FindMember("path");
    if (path == config.MemberEnd() || !path->value.IsString() || path->value.GetStringLength() == 0)
      throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "event_log config: /path: a non-empty string is required");
    path_ = std::filesystem::path(std::string(host_.data_dir())) / path->value.GetString();

    std::ifstream existing(path_);
    for (std::string line; std::getline(existing, line);) written_.insert(line.substr(0, line.find(' ')));
  }

  void send(const wep_batch& batch, wep::Verdict& verdict) override {
    std::error_code ec;
    const auto size_before = std::filesystem::exists(path_, ec) ? std::filesystem::file_size(path_, ec) : 0;
    if (ec) return verdict.retry_later("event_log: " + path_.string() + ": " + ec.message());

    std::unordered_set<std::string> batch_ids;
    std::string lines;
    for (size_t i = 0; i < batch.count; ++i) {
      std::string id(wep::view(batch.rows[i].event_id));
      if (written_.contains(id) || !batch_ids.insert(id).second) continue;
      lines.append(id).append(" ").append(wep::view(batch.rows[i].event_type)).append("\n");
    }
    std::ofstream out(path_, std::ios::binary | std::ios::app);
    out << lines << std::flush;
    if (!out) {
      out.close();
      std::filesystem::resize_file(path_, size_before, ec);  // best effort; start() re-reads what is there
      return verdict.retry_later("event_log: cannot append to " + path_.string());
    }
    written_.merge(batch_ids);
    verdict.delivered();
  }

  bool stop(uint32_t /*timeout_ms*/) override { return true; }

 private:
  wep::Host host_;
  std::filesystem::path path_;
  std::unordered_set<std::string> written_;  // event ids in the file
};

}  // namespace

WEP_TRANSPORT_PLUGIN("event_log", WEP_VERSION_STRING, [](wep::Host host) -> std::unique_ptr<wep::TransportPlugin> {
  return std::make_unique<EventLogTransport>(host);
})
