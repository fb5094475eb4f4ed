// The `ndjson` transport plugin: appends each delivered row as one JSON line
// (the same object shape as the Supabase body rows) to a file.
//
// Config: {"path": "events.ndjson", "fsync": true}. A relative path is
// relative to the plugin's data directory.
//
// Durability: a batch is written completely, then fsync'ed (unless fsync is
// false), and only then reported DELIVERED. A failed write is cut back off
// the file, so the file only ever holds whole lines of acknowledged batches;
// a torn last line left by a crash is cut off at the next start (its rows
// were never acknowledged and are sent again).
//
// Idempotence: the event ids already in the file are loaded at start and
// kept in memory, so a batch sent again after a crash adds no duplicate.
// The file is locked (flock) while the transport runs: a second instance on
// the same file is refused.
//
// Threading: send() is called from one thread at a time (the contract);
// cancel() is a no-op because no send waits on anything but the local disk.
#include <fcntl.h>
#include <rapidjson/document.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wep/version.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <unordered_set>
#include <wep/plugin.hpp>

#include "ndjson_config_schema.h"
#include <wep_support/transport_json.hpp>

namespace {

[[noreturn]] void refuse(const std::string& what) {
  throw wep::Error(WEP_ERR_INVALID_ARGUMENT, "ndjson config: " + what);
}

std::string errno_text(int error) { return std::strerror(error); }

// Writes all of `data` at the end of `fd`. Returns 0 or an errno value.
int write_all(int fd, const char* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return 0;
}

int sync_directory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd) == 0 ? 0 : errno;
  ::close(fd);
  return rc;
}

class NdjsonTransport final : public wep::TransportPlugin {
 public:
  explicit NdjsonTransport(wep::Host host) : host_(host) {}
  ~NdjsonTransport() override { close_file(); }

  void start() override {
    rapidjson::Document json;
    wep::transport::parse_config("ndjson", host_.config_json(), ndjson_config_schema, json);
    path_ = json["path"].GetString();
    if (path_.is_relative()) path_ = std::filesystem::path(std::string(host_.data_dir())) / path_;
    if (json.HasMember("fsync")) fsync_ = json["fsync"].GetBool();
    open_file();
    load_event_ids();
    host_.log(WEP_LOG_INFO, "ndjson transport: appending to " + path_.string() + " (" +
                                std::to_string(event_ids_.size()) + " events already there" +
                                (fsync_ ? "" : ", fsync off") + ")");
  }

  void send(const wep_batch& batch, wep::Verdict& verdict) override {
    if (fd_ < 0) {
      verdict.failed("ndjson transport is not started");
      return;
    }
    if (!broken_.empty()) {
      verdict.failed(broken_);
      return;
    }
    // Encode everything first: a row that cannot be encoded rejects the batch
    // with that row flagged, and nothing is written.
    lines_.clear();
    batch_ids_.clear();
    std::string reasons;
    size_t bad_rows = 0;
    for (size_t i = 0; i < batch.count; ++i) {
      const wep_row& row = batch.rows[i];
      std::string event_id(wep::view(row.event_id));
      if (event_ids_.count(event_id) || batch_ids_.count(event_id)) continue;  // already written
      std::string why;
      if (!encoder_.append(row, lines_, why)) {
        verdict.rejected_row(i);
        if (bad_rows++ < 3) reasons += (reasons.empty() ? "" : "; ") + why;
        continue;
      }
      lines_.push_back('\n');
      batch_ids_.insert(std::move(event_id));
    }
    if (bad_rows > 0) {
      verdict.reason("cannot encode " + std::to_string(bad_rows) + " row(s): " + reasons);
      return;
    }

    if (!lines_.empty()) {
      if (const int error = write_all(fd_, lines_.data(), lines_.size()); error != 0) {
        cut_back_to(file_size_);
        verdict.retry_later("cannot append to " + path_.string() + ": " + errno_text(error));
        return;
      }
      if (fsync_ && ::fdatasync(fd_) != 0) {
        const int error = errno;
        cut_back_to(file_size_);
        verdict.retry_later("cannot sync " + path_.string() + ": " + errno_text(error));
        return;
      }
      file_size_ += static_cast<off_t>(lines_.size());
      event_ids_.merge(batch_ids_);
    }
    verdict.delivered();
  }

  bool stop(uint32_t) override {
    close_file();
    return true;
  }

 private:
  void open_file() {
    std::error_code ec;
    std::filesystem::create_directories(path_.parent_path(), ec);
    if (ec) refuse("key 'path': cannot create the folder '" + path_.parent_path().string() + "': " + ec.message());
    const bool existed = std::filesystem::exists(path_, ec);
    fd_ = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) refuse("key 'path': cannot open '" + path_.string() + "': " + errno_text(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      close_file();
      refuse("key 'path': '" + path_.string() + "' is in use by another process (" + errno_text(error) + ")");
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
      close_file();
      refuse("key 'path': '" + path_.string() + "' is not a regular file");
    }
    file_size_ = st.st_size;
    if (!existed && fsync_) sync_directory(path_.parent_path());  // make the new name durable
  }

  // Reads the ids of the rows already in the file; cuts off a torn last line.
  void load_event_ids() {
    event_ids_.clear();
    std::string pending;  // the current, not yet terminated line
    off_t complete_end = 0;
    off_t offset = 0;
    size_t unreadable_lines = 0;
    rapidjson::Document line_json;
    char buffer[64 * 1024];
    for (;;) {
      const ssize_t n = ::pread(fd_, buffer, sizeof buffer, offset);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw wep::Error(WEP_ERR_FAILED, "ndjson: cannot read " + path_.string() + ": " + errno_text(errno));
      }
      if (n == 0) break;
      offset += n;
      const char* begin = buffer;
      const char* end = buffer + n;
      while (begin < end) {
        const char* newline = static_cast<const char*>(std::memchr(begin, '\n', static_cast<size_t>(end - begin)));
        if (!newline) {
          pending.append(begin, end);
          break;
        }
        pending.append(begin, newline);
        complete_end = offset - (end - newline) + 1;
        line_json.Parse(pending.data(), pending.size());
        if (!line_json.HasParseError() && line_json.IsObject() && line_json.HasMember("event_id") &&
            line_json["event_id"].IsString()) {
          event_ids_.insert(line_json["event_id"].GetString());
        } else if (!pending.empty()) {
          ++unreadable_lines;
        }
        pending.clear();
        begin = newline + 1;
      }
    }
    if (unreadable_lines > 0)
      host_.log(WEP_LOG_WARN, "ndjson transport: " + std::to_string(unreadable_lines) + " unreadable line(s) in " +
                                  path_.string() + " left as they are");
    if (complete_end < file_size_) {
      host_.log(WEP_LOG_WARN, "ndjson transport: cutting a torn last line (" +
                                  std::to_string(file_size_ - complete_end) + " bytes) off " + path_.string() +
                                  "; its rows were never acknowledged and will be sent again");
      if (::ftruncate(fd_, complete_end) != 0)
        throw wep::Error(WEP_ERR_FAILED, "ndjson: cannot repair " + path_.string() + ": " + errno_text(errno));
      file_size_ = complete_end;
      if (fsync_) ::fdatasync(fd_);
    }
  }

  // Removes a partly written batch. If even that fails the file may now end
  // in a torn line, so the transport refuses further batches until restarted
  // (the next start cuts the torn line off).
  void cut_back_to(off_t size) {
    if (::ftruncate(fd_, size) != 0) {
      broken_ = "cannot cut a failed write back off " + path_.string() + " (" + errno_text(errno) +
                "); restart the transport";
      return;
    }
    if (fsync_) ::fdatasync(fd_);
  }

  void close_file() noexcept {
    if (fd_ >= 0) ::close(fd_);  // releases the flock
    fd_ = -1;
  }

  wep::Host host_;
  std::filesystem::path path_;
  bool fsync_ = true;
  int fd_ = -1;
  off_t file_size_ = 0;  // bytes of whole, acknowledged lines
  std::string broken_;   // why no batch can be written any more (empty: fine)
  std::unordered_set<std::string> event_ids_;
  std::unordered_set<std::string> batch_ids_;
  std::string lines_;  // reused batch buffer
  wep::transport::RowEncoder encoder_;
};

}  // namespace

WEP_TRANSPORT_PLUGIN("ndjson", WEP_VERSION_STRING, [](wep::Host host) -> std::unique_ptr<wep::TransportPlugin> {
  return std::make_unique<NdjsonTransport>(host);
})
