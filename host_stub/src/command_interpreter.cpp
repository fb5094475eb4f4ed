// The host-stub line protocol:
//   mutate <type> [<json object>]    -> ok <sequence>
//   online | offline                 -> ok
//   set <key> <json value>           -> ok     (e.g. set analytics_enabled false)
//   pending                          -> pending <N>
//   wait-delivered <timeout_ms>      -> pending <N>, or when rows were
//                                       dead-lettered: pending <N> dead-lettered <M>
//   requeue-dead-letters             -> ok <N>  (rows put back in the queue)
//   stats                            -> one line of JSON (after every effect
//                                       handled the events published before)
//   sleep <ms>                       -> ok
//   load <path> [<json object>]      -> ok <plugin name>
//   unload <plugin name>             -> ok
//   reload <plugin name> [<json>]    -> ok     (same file; the new config if given)
//   plugins                          -> one line of JSON (name, file, version,
//                                       api, state of each plugin)
//   quit                             -> bye
//   anything else                    -> error: <why>
#include <algorithm>
#include <charconv>
#include <wep/host_stub/host.hpp>

namespace wep::host_stub {
namespace {

constexpr int64_t kMaxDurationMs = 3'600'000;  // sleep / wait-delivered bound: one hour
constexpr auto kPendingPollInterval = std::chrono::milliseconds(10);

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'; }

std::string_view trim(std::string_view text) {
  while (!text.empty() && is_space(text.front())) text.remove_prefix(1);
  while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
  return text;
}

// Splits off the first word; `rest` is what follows, trimmed.
std::string_view next_word(std::string_view text, std::string_view& rest) {
  text = trim(text);
  size_t end = 0;
  while (end < text.size() && !is_space(text[end])) ++end;
  rest = trim(text.substr(end));
  return text.substr(0, end);
}

// A duration argument in [0, kMaxDurationMs]; throws HostError naming the command.
std::chrono::milliseconds parse_duration_ms(std::string_view command, std::string_view argument) {
  int64_t value = -1;
  const char* end = argument.data() + argument.size();
  auto [ptr, ec] = std::from_chars(argument.data(), end, value);
  if (argument.empty() || ec != std::errc() || ptr != end || value < 0 || value > kMaxDurationMs) {
    throw HostError(std::string(command) + ": expected a number of milliseconds in 0.." +
                    std::to_string(kMaxDurationMs) + ", got '" + std::string(argument.substr(0, 32)) + "'");
  }
  return std::chrono::milliseconds(value);
}

void expect_no_argument(std::string_view command, std::string_view rest) {
  if (!rest.empty()) throw HostError(std::string(command) + ": takes no argument");
}

// One line out: never a line break inside an answer.
std::string one_line(std::string text) {
  std::replace_if(
      text.begin(), text.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  return text;
}

}  // namespace

CommandInterpreter::CommandInterpreter(Host& host) : host_(host) {}

void CommandInterpreter::interrupt() {
  {
    std::lock_guard lock(interrupt_mutex_);
    interrupted_ = true;
  }
  interrupt_cv_.notify_all();
}

bool CommandInterpreter::wait_interruptible(std::chrono::milliseconds duration) {
  std::unique_lock lock(interrupt_mutex_);
  return !interrupt_cv_.wait_for(lock, duration, [&] { return interrupted_; });
}

std::string CommandInterpreter::execute(std::string_view line, bool& quit) {
  try {
    std::string_view rest;
    const std::string_view command = next_word(line, rest);
    if (command.empty()) return "error: empty command";

    if (command == "mutate") {
      std::string_view payload;
      const std::string_view type = next_word(rest, payload);
      if (type.empty()) return "error: mutate: expected a mutation type, e.g. mutate note.created {\"chars\":5}";
      const int64_t sequence = host_.mutate(type, payload.empty() ? std::string_view("{}") : payload);
      return "ok " + std::to_string(sequence);
    }
    if (command == "online" || command == "offline") {
      expect_no_argument(command, rest);
      host_.set_online(command == "online");
      return "ok";
    }
    if (command == "set") {
      std::string_view value;
      const std::string_view key = next_word(rest, value);
      if (key.empty() || value.empty())
        return "error: set: expected a key and a JSON value, e.g. set analytics_enabled false";
      host_.set_setting(key, value);
      return "ok";
    }
    if (command == "pending") {
      expect_no_argument(command, rest);
      auto count = host_.pending();
      if (!count) return "error: pending: no loaded plugin answers pending counts";
      return "pending " + std::to_string(*count);
    }
    if (command == "wait-delivered") {
      const auto timeout = parse_duration_ms(command, rest);
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      // Dead-lettered rows are not delivered: the answer says so.
      auto answer = [&](int64_t pending) {
        const int64_t dead = host_.dead_letter_rows().value_or(0);
        return "pending " + std::to_string(pending) + (dead > 0 ? " dead-lettered " + std::to_string(dead) : "");
      };
      for (;;) {
        auto count = host_.pending();
        if (!count) return "error: wait-delivered: no loaded plugin answers pending counts";
        const auto now = std::chrono::steady_clock::now();
        if (*count == 0 || now >= deadline) return answer(*count);
        // Delivery progresses on plugin threads with no event to wait on
        // here: short poll, cut short by interrupt().
        const auto wait = std::min<std::chrono::steady_clock::duration>(deadline - now, kPendingPollInterval);
        if (!wait_interruptible(std::chrono::duration_cast<std::chrono::milliseconds>(wait) +
                                std::chrono::milliseconds(1)))
          return answer(*count);
      }
    }
    if (command == "requeue-dead-letters") {
      expect_no_argument(command, rest);
      host_.flush_effects();
      return "ok " + std::to_string(host_.requeue_dead_letters());
    }
    if (command == "stats") {
      expect_no_argument(command, rest);
      host_.flush_effects();  // so the answer reflects every command before it
      return one_line(host_.stats_json());
    }
    if (command == "sleep") {
      wait_interruptible(parse_duration_ms(command, rest));
      return "ok";
    }
    if (command == "load") {
      std::string_view config;
      const std::string_view path = next_word(rest, config);
      if (path.empty()) return "error: load: expected a plugin file, e.g. load /path/libwep_analytics.so {\"events\":{}}";
      return one_line("ok " + host_.load_plugin(std::string(path), config.empty() ? std::string_view("{}") : config));
    }
    if (command == "unload") {
      std::string_view extra;
      const std::string_view name = next_word(rest, extra);
      if (name.empty()) return "error: unload: expected a plugin name (see `plugins`)";
      expect_no_argument("unload <name>", extra);
      host_.unload_plugin(name);
      return "ok";
    }
    if (command == "reload") {
      std::string_view config;
      const std::string_view name = next_word(rest, config);
      if (name.empty()) return "error: reload: expected a plugin name (see `plugins`), then optionally its new config";
      if (config.empty()) {
        host_.reload_plugin(name);
      } else {
        host_.reload_plugin(name, config);
      }
      return "ok";
    }
    if (command == "plugins") {
      expect_no_argument(command, rest);
      return one_line(host_.plugins_json());
    }
    if (command == "quit") {
      expect_no_argument(command, rest);
      quit = true;
      return "bye";
    }
    return one_line("error: unknown command '" + std::string(command.substr(0, 32)) +
                    "' (commands: mutate, online, offline, set, pending, wait-delivered, requeue-dead-letters, stats, "
                    "sleep, load, unload, reload, plugins, quit)");
  } catch (const std::exception& e) {
    return one_line(std::string("error: ") + e.what());
  } catch (...) {
    return "error: unknown failure";
  }
}

}  // namespace wep::host_stub
