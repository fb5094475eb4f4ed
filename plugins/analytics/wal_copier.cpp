#include "wal_copier.hpp"

#include <pthread.h>

#include <memory>
#include <utility>
#include <wep/sqlite/sqlite.hpp>

namespace wep::analytics {

WalCopier::WalCopier(std::string path, StoreOptions options) {
  thread_ = std::thread([this, path = std::move(path), options] { run(path, options); });
  pthread_setname_np(thread_.native_handle(), "wep-analytics-c");
}

WalCopier::~WalCopier() { stop(); }

void WalCopier::committed() {
  {
    std::lock_guard lock(mutex_);
    ++commits_;
  }
  changed_.notify_all();
}

bool WalCopier::wait_until_copied(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  const uint64_t target = commits_;
  return changed_.wait_for(lock, timeout, [&] { return copied_through_ >= target || stopped_; }) && !stopped_;
}

void WalCopier::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void WalCopier::run(const std::string& path, const StoreOptions& options) noexcept {
  std::unique_ptr<wep::sqlite::Connection> connection;
  try {
    // Never a new file: if the queue file was deleted meanwhile, the writer
    // finds out and makes the new one.
    StoreOptions existing_file = options;
    existing_file.create_if_missing = false;
    connection = std::make_unique<wep::sqlite::Connection>(path, "analytics queue", existing_file);
  } catch (const std::exception&) {
    connection.reset();  // the writer's own checkpoints take over (see the header)
  }
  std::unique_lock lock(mutex_);
  while (connection) {
    changed_.wait(lock, [&] { return stopping_ || commits_ > copied_through_; });
    if (stopping_) break;
    const uint64_t target = commits_;
    lock.unlock();
    bool copied = true;
    try {
      connection->exec("PRAGMA wal_checkpoint(PASSIVE)", "copying the WAL into the database");
    } catch (const std::exception&) {
      copied = false;  // e.g. the file is being replaced: stop, the writer checkpoints
    }
    lock.lock();
    if (!copied) break;
    copied_through_ = target;
    changed_.notify_all();
  }
  stopped_ = true;
  changed_.notify_all();
  lock.unlock();
  connection.reset();
}

}  // namespace wep::analytics
