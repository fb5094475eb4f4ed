// Salvaging the readable rows of a damaged queue database file.
//
// A damaged file (SQLITE_CORRUPT) often has only a few bad pages: the rows on
// the good pages can still be read by id. salvage_queue_rows() walks
// analytics_queue in id order and, where a read fails, skips one id at a time
// until reads succeed again, so every row on a readable page is found.
//
// The file is opened read-only (its bytes stay as they are, for inspection).
// Nothing is thrown: a file that cannot be opened or has no readable schema
// salvages nothing.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "queue_store.hpp"

namespace wep::analytics {

struct SalvageResult {
  int64_t rows = 0;                      // rows handed to the sink
  int64_t skipped_ids = 0;               // ids whose read failed (rows there, if any, are lost)
  std::optional<Checkpoint> checkpoint;  // the event-log checkpoint, if readable
};

// Reads the rows of the queue database at `path` in id order and hands them
// to `sink` in chunks of at most `chunk_rows` (each row keeps its id). A sink
// that throws ends the salvage and the exception propagates.
SalvageResult salvage_queue_rows(const std::string& path, size_t chunk_rows,
                                 const std::function<void(std::span<const QueuedRow>)>& sink);

}  // namespace wep::analytics
