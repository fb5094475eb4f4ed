// The `ndjson` transport plugin: appends each delivered row as one JSON line
// (the same object shape as the Supabase body rows) to a file.
//
// Config: {"path": "events.ndjson", "fsync": true}. A relative path is
// relative to the plugin's data directory and must stay inside it (no "..",
// no symbolic link leading out); an absolute path may point anywhere.
//
// Ownership: next to the file lives its index, `<path>.index` (SQLite, see
// delivered_index.hpp), which marks the file as the transport's own. A file
// without an index is adopted only when it is empty or every line of it is a
// row (a JSON object with a string event_id) ending in a newline; anything
// else (a user's text, a database) is refused at start, untouched.
//
// Durability: a batch is written completely, then fsync'ed (unless fsync is
// false), and only then reported DELIVERED. A failed write is cut back off
// the file, so the file only ever holds whole lines of acknowledged batches;
// a torn last line left by a crash after the indexed part is cut off at the
// next start (its rows were never acknowledged and are sent again).
//
// Idempotence (exactly once per event id): the index holds every event id in
// the file, in SQLite's bounded page cache rather than in memory, so a batch
// sent again after a crash adds no duplicate whatever the file's size. The
// index is committed after the file is synced and records how many bytes it
// covers; a start scans only the lines after that (those a crash left
// unindexed) and rescans the whole file when the file was replaced.
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
#include <memory>
#include <string>
#include <unordered_set>
#include <utility>
#include <wep/plugin.hpp>
#include <wep/support/transport_json.hpp>

#include "delivered_index.hpp"
#include "ndjson_config_schema.h"
#include "ndjson_scan.hpp"

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

// `path` from the config, resolved: a relative path against `data_dir`, and
// refused if it (or a symbolic link on the way) leads out of `data_dir`.
std::filesystem::path resolve_path(const std::string& configured, const std::filesystem::path& data_dir) {
  const std::filesystem::path path = configured;
  if (path.is_absolute()) return path.lexically_normal();
  std::error_code ec;
  const std::filesystem::path base = std::filesystem::weakly_canonical(data_dir, ec);
  if (ec) refuse("key 'path': cannot resolve the data directory '" + data_dir.string() + "': " + ec.message());
  const std::filesystem::path full = std::filesystem::weakly_canonical(base / path, ec);
  if (ec) refuse("key 'path': cannot resolve '" + configured + "': " + ec.message());
  const std::filesystem::path inside = full.lexically_relative(base);
  if (inside.empty() || inside == "." || *inside.begin() == "..")
    refuse("key 'path': '" + configured + "' leads out of the plugin's data directory (" + base.string() +
           "); use a path inside it, or an absolute path");
  return full;
}

class NdjsonTransport final : public wep::TransportPlugin {
 public:
  explicit NdjsonTransport(wep::Host host) : host_(host) {}
  ~NdjsonTransport() override { close_file(); }

  void start() override {
    rapidjson::Document json;
    wep::transport::parse_config("ndjson", host_.config_json(), ndjson_config_schema, json);
    path_ = resolve_path(json["path"].GetString(), std::string(host_.data_dir()));
    index_path_ = path_;
    index_path_ += ".index";
    if (json.HasMember("fsync")) fsync_ = json["fsync"].GetBool();
    try {
      open_file();
      open_index();
    } catch (...) {
      index_.reset();
      close_file();
      throw;
    }
    host_.log(WEP_LOG_INFO, "ndjson transport: appending to " + path_.string() + " (" + std::to_string(file_size_) +
                                " bytes already there" + (fsync_ ? "" : ", fsync off") + ")");
  }

  void send(const wep_batch& batch, wep::Verdict& verdict) override {
    if (fd_ < 0 || !index_) {
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
    std::string batch_first_id;
    size_t bad_rows = 0;
    try {
      for (size_t i = 0; i < batch.count; ++i) {
        const wep_row& row = batch.rows[i];
        std::string event_id(wep::view(row.event_id));
        if (batch_ids_.count(event_id) || index_->contains(event_id)) continue;  // already written
        std::string why;
        if (!encoder_.append(row, lines_, why)) {
          verdict.rejected_row(i);
          if (bad_rows++ < 3) reasons += (reasons.empty() ? "" : "; ") + why;
          continue;
        }
        lines_.push_back('\n');
        if (batch_ids_.empty()) batch_first_id = event_id;
        batch_ids_.insert(std::move(event_id));
      }
    } catch (const wep::Error& e) {
      verdict.retry_later(e.what());  // the index could not be read: nothing written
      return;
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
      if (file_size_ == 0) first_event_id_ = batch_first_id;
      file_size_ += static_cast<off_t>(lines_.size());
      // The rows are durable: they are delivered whatever the index does. An
      // index that cannot follow stops further batches until a restart,
      // whose scan indexes these lines.
      try {
        index_->begin();
        for (const std::string& id : batch_ids_) index_->add(id);
        index_->commit({static_cast<uint64_t>(file_size_), first_event_id_});
      } catch (const wep::Error& e) {
        index_->roll_back();
        broken_ = std::string(e.what()) + "; restart the transport";
      }
    }
    verdict.delivered();
  }

  bool stop(uint32_t) override {
    index_.reset();
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

  // Opens or creates the index and brings it up to date with the file.
  void open_index() {
    index_ = wep::ndjson::DeliveredIndex::open_existing(index_path_);
    if (!index_) {
      // No index: the file is adopted only if it is empty or all rows.
      wep::ndjson::LineScanner scan = scan_from(0, nullptr);
      refuse_unless_all_rows(scan, "has no index " + index_path_.filename().string());
      index_ = wep::ndjson::DeliveredIndex::create(index_path_);
      if (fsync_) sync_directory(index_path_.parent_path());
      rebuild_index();
      if (file_size_ > 0)
        host_.log(WEP_LOG_INFO, "ndjson transport: adopted " + path_.string() + " (" + std::to_string(scan.rows()) +
                                    " rows, all written by this transport); indexed in " + index_path_.string());
      return;
    }
    const auto& state = index_->state();
    first_event_id_ = state.first_event_id;
    if (file_size_ == 0) {
      if (state.indexed_bytes > 0) {
        host_.log(WEP_LOG_WARN, "ndjson transport: " + path_.string() + " is empty although its index covers " +
                                    std::to_string(state.indexed_bytes) + " bytes; starting a new index");
        rebuild_index();
      }
      return;
    }
    if (!index_matches_file()) {
      host_.log(WEP_LOG_WARN, "ndjson transport: " + path_.string() +
                                  " is not the file its index describes (replaced or truncated); re-indexing it");
      wep::ndjson::LineScanner scan = scan_from(0, nullptr);
      refuse_unless_all_rows(scan, "does not match its index " + index_path_.filename().string());
      rebuild_index();
      return;
    }
    catch_up_index(state.indexed_bytes);
  }

  // Whether the file still starts with the indexed first row and has a line
  // end where the index stops.
  bool index_matches_file() {
    const auto& state = index_->state();
    if (state.indexed_bytes > static_cast<uint64_t>(file_size_)) return false;
    if (state.indexed_bytes == 0) return true;
    char last = 0;
    if (::pread(fd_, &last, 1, static_cast<off_t>(state.indexed_bytes) - 1) != 1 || last != '\n') return false;
    std::string first_id;
    bool first_seen = false;
    wep::ndjson::LineScanner first(0, [&](std::string_view id, uint64_t) {
      if (!first_seen) first_id = id;
      first_seen = true;
    });
    char buffer[64 * 1024];
    for (off_t offset = 0; !first_seen && first.foreign_lines() == 0;) {
      const ssize_t n = ::pread(fd_, buffer, sizeof buffer, offset);
      if (n <= 0) break;
      first.feed({buffer, static_cast<size_t>(n)});
      offset += n;
    }
    return first_seen && first_id == state.first_event_id;
  }

  // Indexes the rows after `indexed_bytes` (those a crash left unindexed),
  // cuts a torn last line, refuses lines that are not rows.
  void catch_up_index(uint64_t indexed_bytes) {
    index_->begin();
    try {
      wep::ndjson::LineScanner scan = scan_from(indexed_bytes, index_.get());
      if (scan.foreign_lines() > 0) {
        refuse("key 'path': '" + path_.string() + "' has " + std::to_string(scan.foreign_lines()) +
               " line(s) after byte " + std::to_string(indexed_bytes) +
               " that this transport did not write; it is not the transport's own file any more");
      }
      cut_torn_tail(scan);
      index_->commit({static_cast<uint64_t>(file_size_), first_event_id_});
      if (scan.rows() > 0)
        host_.log(WEP_LOG_INFO,
                  "ndjson transport: indexed " + std::to_string(scan.rows()) + " row(s) written before a crash");
    } catch (...) {
      index_->roll_back();
      throw;
    }
  }

  // Forgets every id and indexes the whole file (already checked to be rows).
  void rebuild_index() {
    index_->begin();
    try {
      index_->clear();
      first_event_id_.clear();
      wep::ndjson::LineScanner scan = scan_from(0, index_.get());
      cut_torn_tail(scan);
      index_->commit({static_cast<uint64_t>(file_size_), first_event_id_});
    } catch (...) {
      index_->roll_back();
      throw;
    }
  }

  void refuse_unless_all_rows(const wep::ndjson::LineScanner& scan, const std::string& why) {
    if (scan.foreign_lines() > 0) {
      refuse("key 'path': '" + path_.string() + "' " + why + " and line " + std::to_string(scan.first_foreign_line()) +
             " is not a row this transport writes; it is not the transport's file (left untouched; choose another "
             "path)");
    }
    if (scan.torn_bytes() > 0) {
      refuse("key 'path': '" + path_.string() + "' " + why +
             " and ends in an unterminated line; it is not the transport's file (left untouched; choose another "
             "path)");
    }
  }

  // Reads the file from `offset` to its end; adds each row's id to `index`
  // (if given) and remembers the first row's id.
  wep::ndjson::LineScanner scan_from(uint64_t offset, wep::ndjson::DeliveredIndex* index) {
    bool first_row = offset == 0;  // a scan from 0 of an accepted file starts with a row
    wep::ndjson::LineScanner scan(offset, [&](std::string_view event_id, uint64_t) {
      if (std::exchange(first_row, false)) first_event_id_ = event_id;
      if (index) index->add(event_id);
    });
    char buffer[64 * 1024];
    for (auto at = static_cast<off_t>(offset);;) {
      const ssize_t n = ::pread(fd_, buffer, sizeof buffer, at);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw wep::Error(WEP_ERR_FAILED, "ndjson: cannot read " + path_.string() + ": " + errno_text(errno));
      }
      if (n == 0) break;
      at += n;
      scan.feed({buffer, static_cast<size_t>(n)});
    }
    return scan;
  }

  void cut_torn_tail(const wep::ndjson::LineScanner& scan) {
    if (scan.torn_bytes() == 0) return;
    host_.log(WEP_LOG_WARN, "ndjson transport: cutting a torn last line (" + std::to_string(scan.torn_bytes()) +
                                " bytes) off " + path_.string() +
                                "; its rows were never acknowledged and will be sent again");
    if (::ftruncate(fd_, static_cast<off_t>(scan.complete_end())) != 0)
      throw wep::Error(WEP_ERR_FAILED, "ndjson: cannot repair " + path_.string() + ": " + errno_text(errno));
    file_size_ = static_cast<off_t>(scan.complete_end());
    if (fsync_) ::fdatasync(fd_);
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
  std::filesystem::path index_path_;
  bool fsync_ = true;
  int fd_ = -1;
  off_t file_size_ = 0;         // bytes of whole, acknowledged lines
  std::string first_event_id_;  // of the file's first row ("" while empty)
  std::string broken_;          // why no batch can be written any more (empty: fine)
  std::unique_ptr<wep::ndjson::DeliveredIndex> index_;
  std::unordered_set<std::string> batch_ids_;  // ids of the batch being written
  std::string lines_;                          // reused batch buffer
  wep::transport::RowEncoder encoder_;
};

}  // namespace

WEP_TRANSPORT_PLUGIN("ndjson", WEP_VERSION_STRING, [](wep::Host host) -> std::unique_ptr<wep::TransportPlugin> {
  return std::make_unique<NdjsonTransport>(host);
})
