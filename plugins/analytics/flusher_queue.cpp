#include "flusher_queue.hpp"

#include <pthread.h>

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include "use_cases.hpp"

namespace wep::analytics {

struct FlusherQueue::Impl {
  struct Job {
    enum class Kind { read, remove, dead_letter } kind;
    uint64_t ticket = 0;
    int64_t after_id = 0;         // read
    uint64_t generation = 0;      // read: stale once restart() moved on
    std::vector<int64_t> ids;     // dead_letter
    std::vector<IdRange> ranges;  // remove
    std::string reason;
  };
  struct ReadResult {
    int64_t after_id = 0;
    std::vector<QueuedRow> rows;
    std::exception_ptr error;
  };

  Impl(std::string path_in, StoreOptions options_in, Stats& stats_in, size_t batch_size_in, size_t batch_max_bytes_in)
      : path(std::move(path_in)),
        options(options_in),
        stats(stats_in),
        batch_size(batch_size_in),
        batch_max_bytes(batch_max_bytes_in) {}

  const std::string path;
  const StoreOptions options;
  Stats& stats;
  const size_t batch_size;
  const size_t batch_max_bytes;

  // ---- shared, guarded by `mutex`
  std::mutex mutex;
  std::condition_variable work;  // the queue thread waits for jobs
  std::condition_variable done;  // the caller waits for results
  std::deque<Job> jobs;
  bool stopping = false;
  uint64_t next_ticket = 1;
  uint64_t done_ticket = 0;        // jobs finish in ticket order
  std::exception_ptr write_error;  // first failure of a delete / dead-letter
  uint64_t generation = 0;
  std::optional<int64_t> read_coming;                 // after_id of the read queued or running in this generation
  std::optional<ReadResult> read_result;              // of the current generation, not yet handed out
  std::vector<std::vector<QueuedRow>> spare_batches;  // handed back by recycle(), refilled by reads

  // ---- the caller's
  int64_t cursor = 0;  // the last row handed out in this drain

  // ---- the queue thread's
  std::unique_ptr<QueueStore> store;
  std::unique_ptr<FlushAnalyticsQueueUseCase> use_case;

  std::thread thread;

  uint64_t enqueue_locked(Job job) {
    job.ticket = next_ticket++;
    const uint64_t ticket = job.ticket;
    jobs.push_back(std::move(job));
    work.notify_one();
    return ticket;
  }

  void throw_write_error_locked() {
    if (write_error) std::rethrow_exception(write_error);
  }

  void close_store() {
    use_case.reset();
    store.reset();
  }

  void open_store() {
    if (store) return;
    store = std::make_unique<QueueStore>(path, options);
    use_case = std::make_unique<FlushAnalyticsQueueUseCase>(*store, stats, batch_size, batch_max_bytes);
  }

  void run() noexcept {
    std::unique_lock lock(mutex);
    for (;;) {
      work.wait(lock, [&] { return stopping || !jobs.empty(); });
      if (jobs.empty()) break;  // stopping, and every queued job is done
      Job job = std::move(jobs.front());
      jobs.pop_front();
      const bool skip = job.kind == Job::Kind::read && (stopping || job.generation != generation);
      std::vector<QueuedRow> rows;
      if (job.kind == Job::Kind::read && !skip && !spare_batches.empty()) {
        rows = std::move(spare_batches.back());
        spare_batches.pop_back();
      }
      lock.unlock();

      std::exception_ptr error;
      if (!skip) {
        try {
          open_store();
          switch (job.kind) {
            case Job::Kind::read:
              store->read_after(job.after_id, batch_size, batch_max_bytes, rows);
              break;
            case Job::Kind::remove:
              use_case->mark_delivered(job.ranges);
              break;
            case Job::Kind::dead_letter:
              use_case->dead_letter(job.ids, job.reason);
              break;
          }
        } catch (...) {
          error = std::current_exception();
          close_store();  // reopened by the next job
        }
      }

      lock.lock();
      if (job.kind == Job::Kind::read) {
        if (!skip && job.generation == generation) {
          read_result = ReadResult{job.after_id, std::move(rows), error};
          read_coming.reset();
        }
      } else if (error && !write_error) {
        write_error = error;
      }
      done_ticket = job.ticket;
      done.notify_all();
    }
    lock.unlock();
    close_store();
  }
};

FlusherQueue::FlusherQueue(std::string database_path, StoreOptions options, Stats& stats, size_t batch_size,
                           size_t batch_max_bytes)
    : impl_(std::make_unique<Impl>(std::move(database_path), options, stats, batch_size, batch_max_bytes)) {
  impl_->thread = std::thread([impl = impl_.get()] {
    pthread_setname_np(pthread_self(), "wep-flusher-db");  // for ps / top / perf
    impl->run();
  });
}

FlusherQueue::~FlusherQueue() {
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->work.notify_all();
  impl_->thread.join();
}

std::vector<QueuedRow> FlusherQueue::next_batch() {
  Impl& impl = *impl_;
  std::unique_lock lock(impl.mutex);
  impl.throw_write_error_locked();
  const int64_t after_id = impl.cursor;
  const bool read_ahead = impl.read_result && impl.read_result->after_id == after_id;
  const bool coming = impl.read_coming && *impl.read_coming == after_id;
  if (!read_ahead && !coming) {  // the first batch of a drain: read now
    ++impl.generation;
    impl.read_result.reset();
    impl.read_coming = after_id;
    impl.enqueue_locked({Impl::Job::Kind::read, 0, after_id, impl.generation, {}, {}, {}});
  }
  impl.done.wait(lock, [&] { return impl.read_result.has_value(); });
  Impl::ReadResult result = std::move(*impl.read_result);
  impl.read_result.reset();
  if (result.error) std::rethrow_exception(result.error);
  if (!result.rows.empty()) {
    impl.cursor = result.rows.back().id;
    // Read the next batch while this one is in flight.
    impl.read_coming = impl.cursor;
    impl.enqueue_locked({Impl::Job::Kind::read, 0, impl.cursor, impl.generation, {}, {}, {}});
  }
  return std::move(result.rows);
}

void FlusherQueue::mark_delivered(std::vector<IdRange> ranges) {
  if (ranges.empty()) return;
  std::lock_guard lock(impl_->mutex);
  impl_->enqueue_locked({Impl::Job::Kind::remove, 0, 0, 0, {}, std::move(ranges), {}});
}

void FlusherQueue::dead_letter(std::vector<int64_t> ids, std::string reason) {
  if (ids.empty()) return;
  Impl& impl = *impl_;
  std::unique_lock lock(impl.mutex);
  const uint64_t ticket =
      impl.enqueue_locked({Impl::Job::Kind::dead_letter, 0, 0, 0, std::move(ids), {}, std::move(reason)});
  impl.done.wait(lock, [&] { return impl.done_ticket >= ticket; });
  impl.throw_write_error_locked();
}

void FlusherQueue::recycle(std::vector<QueuedRow>&& rows) {
  std::lock_guard lock(impl_->mutex);
  if (impl_->spare_batches.size() < 2) impl_->spare_batches.push_back(std::move(rows));
}

void FlusherQueue::restart() {
  std::lock_guard lock(impl_->mutex);
  impl_->cursor = 0;
  ++impl_->generation;  // a read ahead still queued or running is dropped
  impl_->read_coming.reset();
  impl_->read_result.reset();
}

void FlusherQueue::sync() {
  Impl& impl = *impl_;
  std::unique_lock lock(impl.mutex);
  const uint64_t last = impl.next_ticket - 1;
  impl.done.wait(lock, [&] { return impl.done_ticket >= last; });
  impl.throw_write_error_locked();
}

}  // namespace wep::analytics
